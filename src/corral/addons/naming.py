"""Names of add-ons, of their databases and roles, of the config vars they are attached
as, and the libpq environment of a database URL (pure)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection, Mapping
from urllib.parse import quote, unquote, urlsplit

from corral.errors import UserError

__all__ = [
    "SERVICES",
    "VAR_MAX",
    "VAR_PATTERN",
    "attachment_var",
    "database_url",
    "identifier",
    "new_addon_name",
    "pg_environ",
    "redis_address",
    "validate_var",
]

#: The add-on services corral provides, and the config var the first one is attached as.
SERVICES = {"postgresql": "DATABASE_URL", "redis": "REDIS_URL"}
#: Words add-on names are made of (``postgresql-amber-40213``), as Heroku's are.
_WORDS = (
    "amber", "brisk", "cedar", "dusky", "ember", "fleet", "glade", "hazel", "ivory", "jolly",
    "koala", "lunar", "maple", "noble", "ochre", "pearl", "quiet", "rapid", "sunny", "tidal",
)  # fmt: skip
#: A config var an add-on may be attached as (the OpenAPI document says the same).
VAR_PATTERN = "[A-Z][A-Z0-9_]*_URL"
_VAR = re.compile(VAR_PATTERN)
#: The longest such name.
VAR_MAX = 63


def new_addon_name(service: str, taken: Collection[str] = ()) -> str:
    """A fresh add-on name such as ``postgresql-amber-40213``, none of ``taken``."""
    while True:
        name = f"{service}-{secrets.choice(_WORDS)}-{secrets.randbelow(90000) + 10000}"
        if name not in taken:
            return name


def identifier(addon: str) -> str:
    """The database and role name of add-on ``addon`` (``postgresql_amber_40213``)."""
    return addon.replace("-", "_")


def validate_var(var: str) -> str:
    """``var`` if it can name a config var an add-on is attached as, else a UserError."""
    if not _VAR.fullmatch(var) or len(var) > VAR_MAX:
        raise UserError(
            f"{var!r} cannot name an add-on's config var; use capitals, digits and '_', "
            "ending in _URL, such as --as REPORTS_DATABASE_URL."
        )
    return var


def attachment_var(service: str, addon: str, config: Mapping[str, str]) -> str:
    """The config var a new attachment of ``addon`` gets: the service's usual one
    (``DATABASE_URL``) if the app has none yet, else one named for the add-on
    (``POSTGRESQL_AMBER_40213_URL``): an app's ``DATABASE_URL`` is never overwritten."""
    usual = SERVICES[service]
    if usual not in config:
        return usual
    return f"{identifier(addon).upper()}_URL"


def database_url(role: str, password: str, host: str, port: int, database: str) -> str:
    """``postgres://role:password@host:port/database``, each part quoted as URLs need."""
    auth = f"{quote(role, safe='')}:{quote(password, safe='')}"
    return f"postgres://{auth}@{host}:{port}/{quote(database, safe='')}"


def pg_environ(url: str) -> dict[str, str]:
    """The libpq variables (``PGHOST``, ``PGPASSWORD``, ...) of a database URL: ``psql``
    and ``pg_dump`` get the password there, never in their command lines (which any
    user of the machine can read)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.hostname:
        raise UserError("The add-on's URL is not a postgres:// URL; attach it again.")
    env = {
        "PGHOST": parts.hostname,
        "PGPORT": str(parts.port or 5432),
        "PGUSER": unquote(parts.username or ""),
        "PGPASSWORD": unquote(parts.password or ""),
        "PGDATABASE": unquote(parts.path.lstrip("/")),
    }
    return {key: value for key, value in env.items() if value}


def redis_address(url: str) -> tuple[str, int, str]:
    """Host, port and password of a ``redis://`` URL (redis-cli takes the password from
    ``REDISCLI_AUTH``, never its command line)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise UserError("The add-on's URL is not a redis:// URL; attach it again.")
    return parts.hostname, parts.port or 6379, unquote(parts.password or "")
