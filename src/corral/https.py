"""``corral server --https``: the options, and what they add to the platform's services.

The router gets a TLS listener (``--certs``, ``--https-bind``) and the supervisor one more
service, ``certs`` (:mod:`corral.certs`), which obtains and renews the certificates.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from corral.config import LETS_ENCRYPT
from corral.errors import UserError
from corral.runtime.services import ServiceSpec

__all__ = ["HttpsOptions", "certs_service", "check_listen", "router_flags"]


@dataclass(frozen=True)
class HttpsOptions:
    """Where to serve TLS, and the ACME server certificates come from."""

    host: str = "0.0.0.0"
    port: int = 443
    directory: str = LETS_ENCRYPT
    email: str | None = None
    #: A CA bundle the ACME server's own TLS is checked with (a test server such as pebble).
    ca_bundle: Path | None = None
    #: Renew certificates this many seconds old, not at 2/3 of their lifetime (tests).
    renew_after: float | None = None


def router_flags(https: HttpsOptions | None, certs: Path) -> list[str]:
    """The router's flags for HTTPS (none without it)."""
    if https is None:
        return []
    return ["--certs", str(certs), "--https-bind", f"{https.host}:{https.port}"]


def certs_service(
    https: HttpsOptions | None, python: str, env: Mapping[str, str], home: Path
) -> list[ServiceSpec]:
    """The certificate service, supervised like the API (none without HTTPS)."""
    if https is None:
        return []
    command = [python, "-m", "corral.certs", "--directory", https.directory]
    command += ["--email", https.email] if https.email else []
    command += ["--ca-bundle", str(https.ca_bundle)] if https.ca_bundle else []
    command += ["--renew-after", f"{https.renew_after:g}"] if https.renew_after else []
    return [ServiceSpec("certs", tuple(command), home, env)]


def check_listen(host: str, port: int, flag: str) -> None:
    """A :class:`UserError` if nothing could listen on ``host:port`` now."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UserError(
                f"Cannot listen on {host}:{port} ({exc.strerror}); "
                f"stop what uses it or pass {flag} HOST:PORT."
            ) from None
