"""API tokens: the secret is shown once; only its SHA-256 is stored.

A plain hash suffices because secrets are 32 random bytes (no dictionary to attack). A
secret reads ``corral_<id>_<random>``: the id finds the row, and the hashes are compared
with :func:`hmac.compare_digest` so the comparison's timing reveals nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time

from corral.store._db import Database
from corral.store.errors import Invalid, NotFound
from corral.store.models import Token

_PREFIX = "corral_"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _token_from_row(row: sqlite3.Row) -> Token:
    return Token(id=row["id"], name=row["name"], created_at=row["created_at"])


class TokensMixin(Database):
    """Data access for API tokens."""

    def create_token(self, name: str) -> tuple[Token, str]:
        """Create a token called ``name``; returns it and its secret, which is not kept."""
        name = name.strip() if isinstance(name, str) else ""
        if not name or len(name) > 100:
            raise Invalid("A token needs a name of 1 to 100 characters, such as 'laptop'.")
        token = Token(id=secrets.token_hex(6), name=name, created_at=time.time())
        secret = f"{_PREFIX}{token.id}_{secrets.token_urlsafe(32)}"
        with self._write() as conn:
            conn.execute(
                "INSERT INTO tokens (id, name, secret_sha256, created_at) VALUES (?, ?, ?, ?)",
                (token.id, token.name, _digest(secret), token.created_at),
            )
        return token, secret

    def verify_token(self, secret: str) -> Token | None:
        """The token whose secret is ``secret``, or ``None``."""
        if not isinstance(secret, str) or not secret.startswith(_PREFIX):
            return None
        token_id = secret.removeprefix(_PREFIX).partition("_")[0]
        with self._read() as conn:
            row = conn.execute("SELECT * FROM tokens WHERE id = ?", (token_id,)).fetchone()
        if row is None or not hmac.compare_digest(row["secret_sha256"], _digest(secret)):
            return None
        return _token_from_row(row)

    def tokens(self) -> list[Token]:
        """Every token (never their secrets), oldest first."""
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM tokens ORDER BY created_at, id").fetchall()
        return [_token_from_row(row) for row in rows]

    def delete_token(self, token_id: str) -> None:
        """Revoke a token: its secret stops working at once."""
        with self._write() as conn:
            deleted = conn.execute("DELETE FROM tokens WHERE id = ?", (token_id,)).rowcount
        if not deleted:
            raise NotFound(f"No token {token_id!r}; it may have been revoked already.")
