"""One ``postgresql`` add-on on the platform's cluster: a database and a role of its own.

The role logs in with a random password and owns only its database; ``CONNECT`` on that
database is revoked from everyone else (and on the cluster's own ``postgres`` and
``template1`` from every app), so one app's role cannot even open another app's
database. Names are the add-on's (``postgresql_amber_40213``) and passwords are URL-safe
base64, so neither needs quoting beyond what is written here.
"""

from __future__ import annotations

import secrets

from corral.addons.cluster import ClusterError, DatabaseServer
from corral.addons.naming import database_url, identifier

__all__ = [
    "create_database",
    "database_facts",
    "drop_database",
    "new_login",
    "new_password",
    "revoke_login",
]


def new_password() -> str:
    """A random password (32 URL-safe characters: no quoting in SQL or URLs)."""
    return secrets.token_urlsafe(24)


def create_database(server: DatabaseServer, addon: str) -> str:
    """Make the role and database of ``addon``; the URL an app connects with. On failure
    whatever was made is dropped again."""
    name, password = identifier(addon), new_password()
    # the platform's own cluster: its own databases are closed to apps too
    closed = (
        "REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;\n"
        "REVOKE CONNECT ON DATABASE template1 FROM PUBLIC;\n"
    )
    try:
        server.sql(
            (closed if server.managed else "")
            + f'CREATE ROLE "{name}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION '
            f"PASSWORD '{password}';\n"
            # an admin of a given server may be no superuser: it must be able to act as it
            f'GRANT "{name}" TO CURRENT_USER;\n'
            f'CREATE DATABASE "{name}" OWNER "{name}";\n'
            f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC;\n'
            f'GRANT CONNECT, TEMPORARY ON DATABASE "{name}" TO "{name}";\n',
            secret=password,
        )
    except ClusterError:
        drop_database(server, addon, missing_ok=True)
        raise
    return database_url(name, password, server.host, server.port, name)


def new_login(server: DatabaseServer, addon: str, old_user: str) -> str:
    """A new login for ``addon`` beside the one its apps use now (``old_user``): a role
    ``<name>_r<N>`` with a new password, a member of the database's owner role and acting
    as it, so what it makes is the owner's. Its URL; the old login works until
    :func:`revoke_login`."""
    name, password = identifier(addon), new_password()
    rows = server.sql(f"SELECT rolname FROM pg_roles WHERE rolname LIKE '{name}\\_r%';\n")
    taken = [int(r.rsplit("_r", 1)[1]) for r in rows.split() if r.rsplit("_r", 1)[1].isdigit()]
    login = f"{name}_r{max(taken, default=0) + 1}"
    server.sql(
        f'CREATE ROLE "{login}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION '
        f"INHERIT PASSWORD '{password}' IN ROLE \"{name}\";\n"
        f'ALTER ROLE "{login}" SET role = "{name}";\n'
        f'GRANT "{login}" TO CURRENT_USER;\n',
        secret=password,
    )
    return database_url(login, password, server.host, server.port, name)


def revoke_login(server: DatabaseServer, addon: str, user: str) -> None:
    """End the login ``user`` of ``addon`` (its sessions too): the owner role stops
    logging in, a rotated login is dropped."""
    name = identifier(addon)
    end = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{user}';\n"
    if user == name:
        server.sql(f'ALTER ROLE "{name}" NOLOGIN PASSWORD NULL;\n{end}')
    elif user.startswith(f"{name}_r"):
        server.sql(f'DROP ROLE IF EXISTS "{user}";\n{end}')


def drop_database(server: DatabaseServer, addon: str, *, missing_ok: bool = False) -> None:
    """Drop ``addon``'s database (its open connections ended), its logins and its role."""
    name = identifier(addon)
    try:
        logins = server.sql(f"SELECT rolname FROM pg_roles WHERE rolname LIKE '{name}\\_r%';\n")
        drops = "".join(f'DROP ROLE IF EXISTS "{login}";\n' for login in logins.split())
        server.sql(
            f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);\n{drops}'
            f'DROP ROLE IF EXISTS "{name}";\n'
        )
    except ClusterError:
        if not missing_ok:
            raise


def database_facts(server: DatabaseServer, addon: str) -> dict[str, str | int]:
    """What ``pg:info`` shows: server version, database size, connections, tables."""
    name = identifier(addon)
    row = server.sql(
        "SELECT current_setting('server_version'), pg_database_size(datname), "
        "(SELECT count(*) FROM pg_stat_activity AS a WHERE a.datname = d.datname) "
        f"FROM pg_database AS d WHERE datname = '{name}';\n"
    ).strip()
    tables = server.sql(
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
