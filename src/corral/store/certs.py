"""Certificates: one row per host the platform serves over HTTPS, and each app's HSTS choice.

The certificate service (:mod:`corral.certs`) owns the ``acme`` rows: it adds one for each
host an app answers to, records how issuance went and when to try again. The API adds
``user`` rows (``certs:add``), removes rows and asks for a refresh; the files themselves
live under ``CORRAL_HOME/certs``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from corral.store._db import Database, require_app
from corral.store.errors import NotFound

__all__ = ["CertSource", "CertState", "Certificate", "CertsMixin", "Issued"]

CertState = Literal["pending", "issued", "failed"]
CertSource = Literal["acme", "user"]


@dataclass(frozen=True)
class Issued:
    """What a certificate says about itself, recorded when it is installed."""

    issuer: str
    not_before: float
    not_after: float
    #: SHA-256 of the PEM file the router serves (it reloads when this changes).
    fingerprint: str


@dataclass(frozen=True)
class Certificate:
    """The certificate state of one host."""

    hostname: str
    app: str
    source: CertSource
    state: CertState
    reason: str | None = None
    issuer: str | None = None
    not_before: float | None = None
    not_after: float | None = None
    fingerprint: str | None = None
    attempts: int = 0
    next_attempt_at: float | None = None
    updated_at: float = 0.0


def _cert(row: sqlite3.Row) -> Certificate:
    return Certificate(**{key: row[key] for key in row.keys()})  # noqa: SIM118


class CertsMixin(Database):
    """Data access for certificates."""

    def certificates(self, app: str | None = None) -> list[Certificate]:
        """The certificate rows of ``app`` (every app's when None), by host name."""
        with self._read() as conn:
            if app is None:
                rows = conn.execute("SELECT * FROM certificates ORDER BY hostname").fetchall()
            else:
                require_app(conn, app)
                rows = conn.execute(
                    "SELECT * FROM certificates WHERE app = ? ORDER BY hostname", (app,)
                ).fetchall()
        return [_cert(row) for row in rows]

    def hsts_apps(self) -> set[str]:
        """The apps that asked for Strict-Transport-Security on their HTTPS answers."""
        with self._read() as conn:
            return {row[0] for row in conn.execute("SELECT name FROM apps WHERE hsts = 1")}

    def set_hsts(self, app: str, enabled: bool) -> None:
        """Turn Strict-Transport-Security on or off for ``app``."""
        with self._write() as conn:
            require_app(conn, app)
            conn.execute("UPDATE apps SET hsts = ? WHERE name = ?", (int(enabled), app))

    def sync_acme_hosts(self, hosts: dict[str, str]) -> None:
        """Make the ``acme`` rows match ``hosts`` (host -> app): new hosts pending, gone ones
        removed. A host whose app changed starts over; ``user`` rows are the user's."""
        now = time.time()
        with self._write() as conn:
            kept = set()
            for row in conn.execute("SELECT * FROM certificates").fetchall():
                host = row["hostname"]
                if row["source"] == "acme" and hosts.get(host) != row["app"]:
                    conn.execute("DELETE FROM certificates WHERE hostname = ?", (host,))
                else:
                    kept.add(host)
            for host, app in hosts.items():
                if host not in kept:
                    conn.execute(
                        "INSERT INTO certificates (hostname, app, source, state, updated_at)"
                        " VALUES (?, ?, 'acme', 'pending', ?)",
                        (host, app, now),
                    )

    def record_issued(self, host: str, source: CertSource, issued: Issued, app: str) -> None:
        """Record that ``host`` now has a certificate (replacing any row it had)."""
        with self._write() as conn:
            require_app(conn, app)
            conn.execute(
                "INSERT OR REPLACE INTO certificates (hostname, app, source, state, issuer,"
                " not_before, not_after, fingerprint, attempts, updated_at)"
                " VALUES (?, ?, ?, 'issued', ?, ?, ?, ?, 0, ?)",
                (host, app, source, issued.issuer, issued.not_before, issued.not_after,
                 issued.fingerprint, time.time()),
            )  # fmt: skip

    def record_failed(self, host: str, reason: str, retry_at: float) -> None:
        """Record a failed issuance: why, and when the service tries again. A host that still
        has a valid certificate keeps it (and keeps being served with it)."""
        with self._write() as conn:
            conn.execute(
                "UPDATE certificates SET state = 'failed', reason = ?, next_attempt_at = ?,"
                " attempts = attempts + 1, updated_at = ? WHERE hostname = ? AND source = 'acme'",
                (reason, retry_at, time.time(), host),
            )

    def request_refresh(self, app: str, hosts: Iterable[str] | None = None) -> list[str]:
        """Ask the service to obtain certificates for ``app``'s hosts again, now; a ``user``
        certificate named here is given back to ACME. Returns the hosts asked for."""
        with self._write() as conn:
            require_app(conn, app)
            rows = conn.execute(
                "SELECT hostname FROM certificates WHERE app = ?", (app,)
            ).fetchall()
            chosen = [r[0] for r in rows if hosts is None or r[0] in set(hosts)]
            conn.executemany(
                "UPDATE certificates SET source = 'acme', next_attempt_at = 0, attempts = 0,"
                " state = CASE state WHEN 'issued' THEN 'issued' ELSE 'pending' END,"
                " updated_at = ? WHERE hostname = ?",
                [(time.time(), host) for host in chosen],
            )
        return chosen

    def remove_certificate(self, app: str, host: str) -> None:
        """Forget ``host``'s certificate; the service obtains a new one if the host still
        belongs to the app (``certs:remove`` of a user certificate goes back to ACME)."""
        with self._write() as conn:
            require_app(conn, app)
            deleted = conn.execute(
                "DELETE FROM certificates WHERE hostname = ? AND app = ?", (host, app)
            ).rowcount
        if not deleted:
            raise NotFound(
                f"{host} has no certificate of {app}; run `corral certs -a {app}` to list them."
            )
