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

__all__ = [
    "create_database",
    "database_facts",
    "drop_database",
    "new_login",
    "new_password",
    "revoke_login",
]

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


def new_login(cluster: Cluster, addon: str, old_user: str) -> str:
    """A new login for ``addon`` beside the one its apps use now (``old_user``): a role
    ``<name>_r<N>`` with a new password, a member of the database's owner role and acting
    as it, so what it makes is the owner's. Its URL; the old login works until
    :func:`revoke_login`."""
    name, password = identifier(addon), new_password()
    rows = cluster.sql(f"SELECT rolname FROM pg_roles WHERE rolname LIKE '{name}\\_r%';\n")
    taken = [int(r.rsplit("_r", 1)[1]) for r in rows.split() if r.rsplit("_r", 1)[1].isdigit()]
    login = f"{name}_r{max(taken, default=0) + 1}"
    cluster.sql(
        f'CREATE ROLE "{login}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION '
        f"INHERIT PASSWORD '{password}' IN ROLE \"{name}\";\n"
        f'ALTER ROLE "{login}" SET role = "{name}";\n',
        secret=password,
    )
    return database_url(login, password, HOST, cluster.port, name)


def revoke_login(cluster: Cluster, addon: str, user: str) -> None:
    """End the login ``user`` of ``addon`` (its sessions too): the owner role stops
    logging in, a rotated login is dropped."""
    name = identifier(addon)
    end = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{user}';\n"
    if user == name:
        cluster.sql(f'ALTER ROLE "{name}" NOLOGIN PASSWORD NULL;\n{end}')
    elif user.startswith(f"{name}_r"):
        cluster.sql(f'DROP ROLE IF EXISTS "{user}";\n{end}')


def drop_database(cluster: Cluster, addon: str, *, missing_ok: bool = False) -> None:
    """Drop ``addon``'s database (its open connections ended), its logins and its role."""
    name = identifier(addon)
    try:
        logins = cluster.sql(f"SELECT rolname FROM pg_roles WHERE rolname LIKE '{name}\\_r%';\n")
        drops = "".join(f'DROP ROLE IF EXISTS "{login}";\n' for login in logins.split())
        cluster.sql(
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);\n{drops}'
            f'DROP ROLE IF EXISTS "{name}";\n'
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
