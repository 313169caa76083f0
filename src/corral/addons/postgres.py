"""One ``postgresql`` add-on on the platform's cluster: a database and a role of its own.

The role logs in with a random password and owns only its database; ``CONNECT`` on that
database is revoked from everyone else (and on the cluster's own ``postgres`` and
``template1`` from every app), so one app's role cannot even open another app's
database. Names are the add-on's (``postgresql_amber_40213``) and passwords are URL-safe
base64, so neither needs quoting beyond what is written here.
"""

from __future__ import annotations

import secrets

from corral.addons.cluster import Cluster, ClusterError
from corral.addons.naming import database_url, identifier

__all__ = ["create_database", "database_facts", "drop_database", "new_password", "set_password"]

#: Host of the URLs apps get: the cluster listens on loopback only.
HOST = "127.0.0.1"


def new_password() -> str:
    """A random password (32 URL-safe characters: no quoting in SQL or URLs)."""
    return secrets.token_urlsafe(24)


def create_database(cluster: Cluster, addon: str) -> str:
    """Make the role and database of ``addon``; the URL an app connects with. On failure
    whatever was made is dropped again."""
    name, password = identifier(addon), new_password()
    try:
        cluster.sql(
            "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;\n"
            "REVOKE CONNECT ON DATABASE template1 FROM PUBLIC;\n"
            f'CREATE ROLE "{name}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION '
            f"PASSWORD '{password}';\n"
            f'CREATE DATABASE "{name}" OWNER "{name}";\n'
            f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC;\n'
            f'GRANT CONNECT, TEMPORARY ON DATABASE "{name}" TO "{name}";\n',
            secret=password,
        )
    except ClusterError:
        drop_database(cluster, addon, missing_ok=True)
        raise
    return database_url(name, password, HOST, cluster.port, name)


def set_password(cluster: Cluster, addon: str) -> str:
    """Give ``addon``'s role a new password (the old one stops working); its new URL."""
    name, password = identifier(addon), new_password()
    cluster.sql(f"ALTER ROLE \"{name}\" PASSWORD '{password}';\n", secret=password)
    return database_url(name, password, HOST, cluster.port, name)


def drop_database(cluster: Cluster, addon: str, *, missing_ok: bool = False) -> None:
    """Drop ``addon``'s database (its open connections ended) and role."""
    name = identifier(addon)
    try:
        cluster.sql(
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);\nDROP ROLE IF EXISTS "{name}";\n'
        )
    except ClusterError:
        if not missing_ok:
            raise


def database_facts(cluster: Cluster, addon: str) -> dict[str, str | int]:
    """What ``pg:info`` shows: server version, database size, connections, tables."""
    name = identifier(addon)
    row = cluster.sql(
        "SELECT current_setting('server_version'), pg_database_size(datname), "
        "(SELECT count(*) FROM pg_stat_activity AS a WHERE a.datname = d.datname) "
        f"FROM pg_database AS d WHERE datname = '{name}';\n"
    ).strip()
    tables = cluster.sql(
        "SELECT count(*) FROM pg_catalog.pg_tables "
        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema');\n",
        database=name,
    ).strip()
    version, size, connections = row.split("|")
    return {
        "version": version,
        "size": int(size),
        "connections": int(connections),
        "tables": int(tables or 0),
    }
