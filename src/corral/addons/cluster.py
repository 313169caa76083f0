"""The platform's PostgreSQL cluster: made with ``initdb`` on first use, run as a service.

One cluster per platform home, under ``addons/postgresql/``: its data directory and its
Unix socket directory belong to the user it runs as (Debian's ``postgres`` when the
platform runs as root: PostgreSQL refuses to run as root; else the platform's own user),
both 0700. Apps reach it on a loopback port fixed at ``initdb`` (their ``DATABASE_URL``
must outlive a restart), with a password (SCRAM); the platform administers it as its
superuser through the socket (peer authentication: no admin password exists).

Once initialised it is a supervised platform service (``corral[postgresql]``) for good:
started with the platform, restarted with backoff, adopted across restarts; a cluster
that holds no database costs a few MB of memory, and starting it on demand would make
every first request wait for it.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from corral.config import Settings
from corral.errors import UserError
from corral.files import atomic_write
from corral.runtime.services import ServiceSpec, free_port

__all__ = [
    "Cluster",
    "ClusterError",
    "DatabaseServer",
    "Invocation",
    "Owner",
    "find_programs",
    "reason",
    "run_sql",
]

#: Seconds an add-on request waits for the supervisor to have the cluster answering.
READY_TIMEOUT = 30.0
#: Where Debian's ``postgresql`` package puts each version's programs.
DEBIAN_ROOT = Path("/usr/lib/postgresql")
#: The system user the cluster runs as when the platform is root (made by Debian's package).
SYSTEM_USER = "postgres"
#: The programs an add-on needs.
PROGRAMS = ("initdb", "postgres", "psql", "pg_dump", "pg_restore")


class ClusterError(UserError):
    """The cluster is missing, down, or refused a command; the message says which (no
    secrets). The API answers 503: the server cannot do it now."""

    http_status = 503


@dataclass(frozen=True)
class Owner:
    """The system user the cluster runs as."""

    name: str
    uid: int
    gid: int

    @classmethod
    def find(cls, system_user: str = SYSTEM_USER, package: str = "postgresql") -> Owner:
        """``system_user`` (made by Debian's ``package``) when the platform is root, else
        the platform's own user."""
        if os.geteuid() != 0:
            entry = pwd.getpwuid(os.geteuid())
        else:
            try:
                entry = pwd.getpwnam(system_user)
            except KeyError:
                raise ClusterError(
                    f"There is no {system_user} system user to run the add-on's server as; "
                    f"install Debian's {package} package (apt-get install {package})."
                ) from None
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)

    def popen(self) -> dict[str, Any]:
        """``subprocess`` arguments running a child as this user (nothing as non-root)."""
        if os.geteuid() != 0:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def find_programs(
    settings: Settings, names: tuple[str, ...] = PROGRAMS, package: str = "postgresql"
) -> Path:
    """The directory holding PostgreSQL's programs ``names``, or an error naming the
    Debian ``package`` that has them."""
    if settings.postgresql_bin is not None:
        candidates = [settings.postgresql_bin]
    else:
        versions = DEBIAN_ROOT.glob("*/bin") if DEBIAN_ROOT.is_dir() else []
        candidates = sorted(versions, key=lambda p: _version_key(p.parent.name), reverse=True)
    for directory in candidates:
        if all(os.access(directory / name, os.X_OK) for name in names):
            return directory
    raise ClusterError(
        f"PostgreSQL is not installed on the corral server: install Debian's {package} "
        f"package there (apt-get install {package}), then create the add-on again."
    )


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


class Cluster:
    """The cluster of one platform home: its files, its service, and SQL run as superuser."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = settings.addons_dir / "postgresql"
        self.data = self.dir / "data"
        self.sockets = self.dir / "run"
        self.state_path = self.dir / "cluster.json"

    def initialised(self) -> bool:
        """Whether ``initdb`` has made the cluster (and its state was recorded)."""
        return self.state_path.exists() and (self.data / "PG_VERSION").exists()

    def _state(self) -> dict[str, str | int]:
        return json.loads(self.state_path.read_text())

    @property
    def port(self) -> int:
        """The loopback port apps connect to."""
        return int(self._state()["port"])

    @property
    def superuser(self) -> str:
        """The cluster's superuser (peer authentication: the user it runs as)."""
        return str(self._state()["superuser"])

    @property
    def bin(self) -> Path:
        """The programs the cluster was made with (a later version cannot read its files)."""
        return Path(str(self._state()["bin"]))

    def ensure(self) -> None:
        """Make the cluster if it does not exist yet, and wait until it answers."""
        if not self.initialised():
            self._init(find_programs(self.settings))
        self.wait_ready()

    def _init(self, programs: Path) -> None:
        owner = Owner.find()
        # the way to the data: others (the postgres user) pass through, never list
        for path in (self.settings.home, self.settings.addons_dir, self.dir):
            path.mkdir(parents=True, exist_ok=True)
            if path.stat().st_uid == os.geteuid():
                path.chmod(0o711)
        shutil.rmtree(self.data, ignore_errors=True)  # what a failed initdb left
        for path in (self.data, self.sockets):
            path.mkdir(mode=0o700, exist_ok=True)
            os.chown(path, owner.uid, owner.gid)
        done = subprocess.run(
            [str(programs / "initdb"), "--pgdata", str(self.data), "--username", owner.name,
             "--auth-local=peer", "--auth-host=scram-sha-256", "--encoding=UTF8",
             "--locale=C.UTF-8", "--no-instructions"],
            cwd=self.dir, env=_environ(), capture_output=True, text=True, check=False,
            timeout=120, **owner.popen(),
        )  # fmt: skip
        if done.returncode != 0:
            shutil.rmtree(self.data, ignore_errors=True)
            raise ClusterError(f"initdb failed: {reason(done.stderr)}")
        state = {"port": free_port(), "bin": str(programs), "superuser": owner.name}
        atomic_write(self.state_path, json.dumps(state) + "\n", mode=0o600)

    def service(self) -> ServiceSpec:
        """The cluster as a platform service, listening on loopback and its socket only."""
        owner = Owner.find()
        return ServiceSpec(
            "postgresql",
            (str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-k", str(self.sockets), "-c", "listen_addresses=127.0.0.1",
             "-c", "unix_socket_permissions=0700"),
            self.dir,
            _environ(),
            user=(owner.uid, owner.gid) if os.geteuid() == 0 else None,
        )  # fmt: skip

    @property
    def host(self) -> str:
        """Where apps connect: the cluster listens on loopback only."""
        return "127.0.0.1"

    #: Ours: the platform may close the cluster's own databases to apps.
    managed = True

    def invocation(self, program: str, *args: str) -> Invocation:
        """``program`` (psql, pg_dump, ...) connecting as the superuser through the socket."""
        return Invocation(
            [str(self.bin / program), "--host", str(self.sockets), "--port", str(self.port),
             "--username", self.superuser, *args],
            _environ(), self.dir, Owner.find().popen(),
        )  # fmt: skip

    def sql(self, script: str, *, database: str | None = None, secret: str = "") -> str:
        """Run ``script`` as the superuser in ``database`` (see :func:`run_sql`)."""
        return run_sql(self, script, database=database or "postgres", secret=secret)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Return once the cluster answers (the supervisor starts it); else a UserError."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sql("SELECT 1")
                return
            except ClusterError:
                if time.monotonic() > deadline:
                    raise ClusterError(
                        f"The platform's PostgreSQL did not answer within {timeout:g}s; is "
                        "`corral server` running? Its lines are in the platform's log "
                        f"({self.settings.logs_dir('corral')})."
                    ) from None
            time.sleep(0.2)


@dataclass(frozen=True)
class Invocation:
    """A client program of PostgreSQL, connected: its argv, environment (the password, if
    any, is there), working directory and the ``subprocess`` arguments of its user."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    popen: dict[str, Any]

    def run(self, timeout: float, **streams: Any) -> subprocess.CompletedProcess[str]:
        """Run it to its end (text, no check); ``streams``: ``input``, ``stdin``, ``stdout``,
        ``stderr`` or ``capture_output`` as ``subprocess.run`` takes them."""
        return subprocess.run(
            self.argv, cwd=self.cwd, env=self.env, text=True, check=False, timeout=timeout,
            **self.popen, **streams,
        )  # fmt: skip


class DatabaseServer(Protocol):
    """Where a ``postgresql`` add-on's database lives: the platform's cluster, or a server
    given with ``--server`` (:mod:`corral.addons.external`)."""

    managed: bool

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    def invocation(self, program: str, *args: str) -> Invocation: ...

    def sql(self, script: str, *, database: str | None = None, secret: str = "") -> str:
        """Run ``script`` as the admin in ``database`` (None: its own, ``postgres``)."""
        ...


def run_sql(server: DatabaseServer, script: str, *, database: str, secret: str = "") -> str:
    """Run ``script`` on ``server`` as its admin in ``database``; its rows, one per line
    (``|`` between columns). ``secret`` (a password in it) is never in an error."""
    how = server.invocation("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "--dbname", database, "-f", "-")  # fmt: skip
    done = how.run(120, input=script, capture_output=True)
    if done.returncode != 0:
        error = reason(done.stderr)
        raise ClusterError(
            f"PostgreSQL refused it: {error.replace(secret, '***') if secret else error}"
        )
    return done.stdout


def _environ() -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}


def reason(text: str) -> str:
    """The line of ``text`` that says what went wrong (psql's ERROR, not its LINE echo)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    said = [line for line in lines if "ERROR" in line or "FATAL" in line]
    return (said or lines or ["no message"])[0]
