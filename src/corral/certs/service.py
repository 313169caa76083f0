"""The certificate service: keeps a certificate on every host an app answers to.

Each tick it reads the hosts from the store (``<app>.<domain>`` and custom domains),
obtains what is missing or due (:class:`~corral.certs.policy.RenewPolicy`), records how
it went, and writes the index the router serves from. Failures are retried with backoff
and said in the platform log and the app's own log; an app without a certificate keeps
being served over HTTP.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from corral.certs.acme_client import IssueFailed, Issuer
from corral.certs.pem import install
from corral.certs.policy import RenewPolicy
from corral.config import Settings
from corral.logfiles import LogLine, append_line, timestamp
from corral.router.tls import CertEntry, save_index
from corral.store import Certificate, Store, StoreBusy

__all__ = ["CertService", "app_hosts"]


def app_hosts(store: Store, domain: str) -> dict[str, str]:
    """Every host an app answers to (host -> app): its default host and custom domains."""
    hosts = {f"{app.name}.{domain}".lower(): app.name for app in store.list_apps()}
    hosts.update({d.hostname: d.app for d in store.domains()})
    return hosts


class CertService:
    """Obtains, renews and indexes certificates; :meth:`tick` does one round."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        issuer: Issuer,
        policy: RenewPolicy | None = None,
        *,
        say: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        self.store = store
        self.issuer = issuer
        self.layout = issuer.layout
        self.policy = policy or RenewPolicy()
        self.say = say
        self._index: dict[str, CertEntry] | None = None

    def tick(self, stop: threading.Event | None = None) -> None:
        """Sync the hosts, obtain what is due (until ``stop``), and keep the index current."""
        self.store.sync_acme_hosts(app_hosts(self.store, self.settings.domain))
        rows = self.store.certificates()
        self.write_index(rows)
        for cert in rows:
            if stop is not None and stop.is_set():
                return
            if self.policy.due(cert, time.time()):
                self.obtain(cert)
                self.write_index(self.store.certificates())

    def obtain(self, cert: Certificate) -> None:
        """Obtain ``cert``'s host a certificate now, and record how it went."""
        host, app = cert.hostname, cert.app
        renewing = cert.fingerprint is not None
        self._log(app, f"{'Renewing' if renewing else 'Obtaining'} the certificate of {host}")
        try:
            pair = self.issuer.issue(host)
        except IssueFailed as failure:
            delay = self.policy.retry_delay(cert.attempts + 1)
            self.store.record_failed(host, str(failure), time.time() + delay)
            self._log(
                app,
                f"Could not obtain a certificate for {host}: {failure}; "
                f"trying again in {delay:.0f}s",
            )
            return
        issued = install(self.layout, host, pair)
        self.store.record_issued(host, "acme", issued, app)
        expiry = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(issued.not_after))
        self._log(app, f"Certificate of {host} issued by {issued.issuer}, valid until {expiry}")

    def write_index(self, rows: list[Certificate]) -> None:
        """Write the router's index if what it should serve changed; remove stale files."""
        now = time.time()
        hsts = self.store.hsts_apps()
        entries = {
            c.hostname: CertEntry(c.fingerprint, c.app in hsts)
            for c in rows
            if c.fingerprint and c.not_after and c.not_after > now
            and self.layout.host_pem(c.hostname).exists()
        }  # fmt: skip
        if entries == self._index:
            return
        self.layout.prepare()
        save_index(self.layout, entries)
        self._index = entries
        known = {c.hostname for c in rows}
        for path in self.layout.live.glob("*.pem"):
            if path.name.removesuffix(".pem") not in known:
                path.unlink(missing_ok=True)

    def _log(self, app: str, message: str) -> None:
        self.say(message)  # the service's own output: the platform log (corral/certs.log)
        line = LogLine(timestamp(), "corral", "certs", message)
        append_line(self.settings.logs_dir(app), "corral", line)

    def run(self, stop: threading.Event, interval: float) -> None:
        """Tick every ``interval`` seconds until ``stop``; a busy store only delays a tick."""
        while not stop.is_set():
            try:
                self.tick(stop)
            except StoreBusy:
                self.say("The store is busy; trying again at the next tick")
            stop.wait(interval)
