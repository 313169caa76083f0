"""A PostgreSQL server corral does not run, given with ``addons:create postgresql --server
URL`` (or ``$CORRAL_POSTGRESQL_SERVER``): the path for an app that outgrows one machine
and moves to a managed database. The URL names an admin role that may create roles and
databases (a superuser, or ``CREATEROLE CREATEDB`` as managed services give); each
add-on there is a database and a role of its own, as on the platform's cluster.

The admin URL is kept in the store (root-only) and reaches ``psql``, ``pg_dump`` and
``pg_restore`` in their environment (``PGPASSWORD``, ``PGSSLMODE``), never a command line
or an answer of the API.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from corral.addons.cluster import (
    Cluster,
    ClusterError,
    DatabaseServer,
    Invocation,
    find_programs,
    run_sql,
)
from corral.addons.naming import pg_environ
from corral.config import Settings
from corral.errors import UserError
from corral.store import Addon

__all__ = ["CLIENT_PROGRAMS", "External", "server_of", "where"]

#: What an add-on on a server of its own needs here: Debian's postgresql-client.
CLIENT_PROGRAMS = ("psql", "pg_dump", "pg_restore")


class External:
    """A PostgreSQL server reached with an admin URL."""

    #: Not ours: its own databases are left as they are.
    managed = False

    def __init__(self, settings: Settings, admin_url: str) -> None:
        parts = urlsplit(admin_url)
        if parts.scheme not in ("postgres", "postgresql") or not parts.hostname:
            raise UserError(
                "--server must be a postgres:// URL of an admin role, such as "
                "postgres://admin:secret@db.example.com:5432/postgres."
            )
        env = pg_environ(admin_url)
        self._database = env.pop("PGDATABASE", "postgres")
        self._env = env
        sslmode = parse_qs(parts.query).get("sslmode")
        if sslmode:
            self._env["PGSSLMODE"] = sslmode[0]
        self._host, self._port = parts.hostname, parts.port or 5432
        self.bin = find_programs(settings, CLIENT_PROGRAMS, package="postgresql-client")

    @property
    def host(self) -> str:
        """The server's host, as apps reach it."""
        return self._host

    @property
    def port(self) -> int:
        """The server's port."""
        return self._port

    def invocation(self, program: str, *args: str) -> Invocation:
        """``program`` connecting as the admin role, its password in the environment."""
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **self._env}
        return Invocation([str(self.bin / program), *args], env, Path("/"), {})

    def sql(self, script: str, *, database: str | None = None, secret: str = "") -> str:
        """Run ``script`` as the admin role in ``database`` (None: the URL's own)."""
        return run_sql(self, script, database=database or self._database, secret=secret)

    def check(self) -> None:
        """Refuse a server that does not answer or a role that may not make databases."""
        try:
            rights = self.sql("SELECT rolsuper OR (rolcreaterole AND rolcreatedb) "
                              "FROM pg_roles WHERE rolname = current_user;\n").strip()  # fmt: skip
        except ClusterError as error:
            raise UserError(f"Cannot use the server {self._host}:{self._port}: {error}") from None
        if rights != "t":
            raise UserError(
                f"The role of --server cannot create roles and databases on {self._host}; "
                "give a superuser, or a role with CREATEROLE and CREATEDB."
            )


def server_of(settings: Settings, addon: Addon) -> DatabaseServer:
    """Where ``addon``'s database lives."""
    return Cluster(settings) if addon.server is None else External(settings, addon.server)


def where(addon: Addon) -> str:
    """Which server, for people: ``platform``, or the given one's host and port."""
    if addon.server is None:
        return "platform"
    parts = urlsplit(addon.server)
    return f"{parts.hostname}:{parts.port or 5432}"
