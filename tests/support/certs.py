"""Certificates made on the spot for tests: a self-signed certificate and its key."""

from __future__ import annotations

from corral.router.tls import self_signed

__all__ = ["make_cert"]


def make_cert(names: list[str], days: int = 30) -> tuple[str, str]:
    """A self-signed certificate for ``names`` and its key, as PEM text."""
    cert, key = self_signed(names, days)
    return cert.decode(), key.decode()
