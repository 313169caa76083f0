"""When a host's certificate is due: issue when missing, renew at two thirds of its lifetime,
retry a failure after a growing delay. Pure: the service asks with a row and a time."""

from __future__ import annotations

from dataclasses import dataclass

from corral.store import Certificate

__all__ = ["RenewPolicy"]


@dataclass(frozen=True)
class RenewPolicy:
    """Let's Encrypt's advice (renew at 2/3 of the lifetime) and a capped backoff."""

    #: Renew once this share of the certificate's lifetime has passed.
    fraction: float = 2 / 3
    #: Renew once the certificate is this many seconds old instead (a short window to test).
    renew_after: float | None = None
    #: Delay after the first failure; doubled after each further one, up to ``cap``.
    first_delay: float = 60.0
    cap: float = 6 * 3600.0

    def renew_at(self, cert: Certificate) -> float | None:
        """When ``cert`` should be renewed (None: it is not an issued ACME certificate)."""
        if cert.source != "acme" or cert.not_before is None or cert.not_after is None:
            return None
        if self.renew_after is not None:
            return cert.not_before + self.renew_after
        return cert.not_before + self.fraction * (cert.not_after - cert.not_before)

    def due(self, cert: Certificate, now: float) -> bool:
        """Whether the service should try to obtain ``cert``'s host now."""
        if cert.source != "acme":
            return False
        if cert.next_attempt_at is not None:  # after a failure, or a refresh (0)
            return cert.next_attempt_at <= now
        if cert.state == "pending":
            return True
        renew = self.renew_at(cert)
        return renew is not None and renew <= now

    def retry_delay(self, attempts: int) -> float:
        """Seconds before the next try after ``attempts`` failures in a row (the one just now
        included)."""
        return min(self.cap, self.first_delay * 2 ** max(0, attempts - 1))
