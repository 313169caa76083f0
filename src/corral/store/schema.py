"""The store's schema as an ordered list of migrations, applied at open in one transaction.

The schema version is SQLite's ``PRAGMA user_version``: migration ``i`` (0-based) brings the
database to version ``i + 1``. Append new migrations; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3

from corral.errors import UserError

__all__ = ["MIGRATIONS", "migrate", "schema_version"]

_V1 = """
CREATE TABLE apps (
    name            TEXT PRIMARY KEY,
    created_at      REAL NOT NULL,
    maintenance     INTEGER NOT NULL DEFAULT 0,
    current_release INTEGER
);

-- The app's config vars: what `config` shows and what the next release snapshots.
CREATE TABLE config_vars (
    app   TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (app, key)
);

CREATE TABLE releases (
    app           TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    version       INTEGER NOT NULL,
    slug_id       TEXT NOT NULL,
    slug_path     TEXT NOT NULL,
    description   TEXT NOT NULL,
    config        TEXT NOT NULL,  -- JSON object: the config snapshot
    process_types TEXT NOT NULL,  -- JSON object: process type -> command
    status        TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    created_at    REAL NOT NULL,
    PRIMARY KEY (app, version)
);

CREATE TABLE builds (
    id          TEXT PRIMARY KEY,
    app         TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    status      TEXT NOT NULL
                CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    source_ref  TEXT NOT NULL,
    slug_id     TEXT,
    log_path    TEXT,
    created_at  REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX builds_by_app ON builds (app, created_at);

CREATE TABLE formation (
    app          TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
    process_type TEXT NOT NULL,
    quantity     INTEGER NOT NULL CHECK (quantity BETWEEN 0 AND 100),
    PRIMARY KEY (app, process_type)
);

CREATE TABLE domains (
    hostname TEXT PRIMARY KEY,
    app      TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE
);
CREATE INDEX domains_by_app ON domains (app);

-- Observed state, owned by the supervisor. No foreign key on purpose: when an app is
-- deleted its dynos stay listed until the manager has stopped them and removed the rows.
CREATE TABLE dynos (
    app             TEXT NOT NULL,
    name            TEXT NOT NULL,
    process_type    TEXT NOT NULL,
    release_version INTEGER NOT NULL,
    pid             INTEGER,
    pid_start_time  REAL,
    port            INTEGER,
    state           TEXT NOT NULL CHECK (state IN ('starting', 'up', 'crashed', 'stopping')),
    restarts        INTEGER NOT NULL DEFAULT 0,
    next_restart_at REAL,
    since           REAL NOT NULL,
    PRIMARY KEY (app, name)
);

CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
"""

# v2: restart and stop requests from `ps:restart` / `ps:stop`, consumed by the supervisor.
_V2 = """
CREATE TABLE dyno_requests (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    app          TEXT NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
    action       TEXT NOT NULL CHECK (action IN ('restart', 'stop')),
    target       TEXT,
    requested_at REAL NOT NULL
);
"""

# v3: a memory quota per app (NULL: the platform's default).
_V3 = """
ALTER TABLE apps ADD COLUMN memory_quota_mb INTEGER;
"""

# v4: why a release failed, recorded with its status in one write: the reason, and the last
# log lines of its new dynos (a JSON list of "web.1: message" strings). Deploys wait on it.
_V4 = """
ALTER TABLE releases ADD COLUMN failure_reason TEXT;
ALTER TABLE releases ADD COLUMN failure_excerpt TEXT;
"""

# v5: one-off dynos (`corral run`, `run:detached`), recorded by the API that started them so
# `ps` lists them and `ps:kill` finds them; the supervisor never reads or writes these rows.
_V5 = """
CREATE TABLE one_offs (
    app             TEXT NOT NULL,
    name            TEXT NOT NULL,
    command         TEXT NOT NULL,
    release_version INTEGER NOT NULL,
    pid             INTEGER NOT NULL,
    pid_start_time  REAL NOT NULL,
    attached        INTEGER NOT NULL,
    started_at      REAL NOT NULL,
    PRIMARY KEY (app, name)
);
"""

# v6: `apps:rename` requests the supervisor has not taken yet: the store's rows are renamed
# by the API at once, and the supervisor carries the running dynos over to the new name.
_V6 = """
CREATE TABLE app_renames (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    old          TEXT NOT NULL,
    new          TEXT NOT NULL,
    requested_at REAL NOT NULL
);
"""

# v7: HTTPS. One row per host the certificate service serves (an app's default host and
# its custom domains): where its certificate came from, how issuance went, when it expires,
# and when to try again; ``apps.hsts`` asks the router to send Strict-Transport-Security.
_V7 = """
CREATE TABLE certificates (
    hostname        TEXT PRIMARY KEY,
    app             TEXT NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
    source          TEXT NOT NULL CHECK (source IN ('acme', 'user')),
    state           TEXT NOT NULL CHECK (state IN ('pending', 'issued', 'failed')),
    reason          TEXT,
    issuer          TEXT,
    not_before      REAL,
    not_after       REAL,
    fingerprint     TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    updated_at      REAL NOT NULL
);
CREATE INDEX certificates_by_app ON certificates (app);
ALTER TABLE apps ADD COLUMN hsts INTEGER NOT NULL DEFAULT 0;
"""

# v8: add-ons (databases the platform runs for apps) and the apps they are attached to, as
# which config var. An app owning add-ons cannot be deleted before they are destroyed.
_V8_ADDONS = """
CREATE TABLE addons (
    name       TEXT PRIMARY KEY,
    app        TEXT NOT NULL REFERENCES apps (name),
    service    TEXT NOT NULL,
    plan       TEXT NOT NULL,
    url        TEXT NOT NULL,
    created_at REAL NOT NULL,
    server     TEXT  -- the admin URL of a server given with --server; NULL: the platform's
);
CREATE TABLE addon_attachments (
    addon TEXT NOT NULL REFERENCES addons (name) ON DELETE CASCADE,
    app   TEXT NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
    var   TEXT NOT NULL,
    PRIMARY KEY (app, var)
);
"""

#: Ordered migrations; the database's ``user_version`` counts how many have been applied.
MIGRATIONS: list[str] = [_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8_ADDONS]


def schema_version(conn: sqlite3.Connection) -> int:
    """The number of migrations applied to the database behind ``conn``."""
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the pending migrations in one ``BEGIN IMMEDIATE`` transaction; return the version.

    The write lock is taken before the version is read, so processes opening a fresh
    database at the same moment apply each migration exactly once; a store already up to
    date is opened without it (a process starting while another holds the lock can read).
    """
    if schema_version(conn) == len(MIGRATIONS):
        return len(MIGRATIONS)
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(conn)
        if current > len(MIGRATIONS):
            raise UserError(
                f"The store is at schema version {current}, newer than this corral knows "
                f"({len(MIGRATIONS)}); upgrade corral."
            )
        for script in MIGRATIONS[current:]:
            for statement in _statements(script):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    """Split a script into complete statements (``executescript`` would commit our transaction)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete SQL statement in migration: {buffer.strip()[:60]!r}")
    return statements
