"""corral's configuration, in one place: defaults, environment variables and flags.

Read once with :func:`Settings.load` and passed down; nothing else reads ``os.environ``
for corral's own settings.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from corral.errors import UserError

#: Where corral keeps its state: a user's own data directory, or for root (a server whose
#: apps each run as a user of their own, who must be able to pass through its parents)
#: the usual place for a system service's state.
DEFAULT_HOME = (
    Path("/var/lib/corral") if os.geteuid() == 0 else Path.home() / ".local" / "share" / "corral"
)
#: Releases whose slugs are kept for rollbacks, by default: corral removes the rest. Heroku
#: keeps every release's record but rolls back only to slugs it still has; ten covers the
#: "undo the last few deploys" a rollback is for, at a bounded cost in disk.
KEEP_RELEASES = 10
#: The largest slug a build may make, by default: Heroku's limit (500 MB).
SLUG_MAX_MB = 500
#: Where ``corral server --https`` gets certificates by default: Let's Encrypt's production
#: ACME directory (``--acme-directory`` names another, e.g. a test server such as pebble).
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"


#: What apps' user names start with, and the uids they get, by default.
USER_PREFIX = "corral-"
UID_RANGE = (40000, 49999)


def _uid_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    if not (low.isdigit() and high.isdigit() and 1000 <= int(low) <= int(high) < 2**31):
        raise UserError(
            f"$CORRAL_UIDS is {text!r}; set it to a range of unused uids such as 40000-49999."
        )
    return int(low), int(high)


def _running_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UserError(f"$CORRAL_ROUTER_PORT is {text!r}; set it to a port number such as 8080.")
    return int(text)


def _positive(text: str, name: str, example: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise UserError(f"${name} is {text!r}; set it to {example}.")
    return int(text)


@dataclass(frozen=True)
class Settings:
    """Where corral keeps its state, where apps are served, and the defaults builds fall back on."""

    home: Path
    #: Python used when an app names none (the one corral itself runs on, always present).
    default_python: str = _running_python()
    #: Directory scanned for pyenv-installed interpreters.
    pyenv_root: Path = Path.home() / ".pyenv"
    #: Apps are served at ``<app>.<domain>`` (``corral server --domain``, ``$CORRAL_DOMAIN``).
    domain: str = "localhost"
    #: The port the router listens on (``corral server --port``, ``$CORRAL_ROUTER_PORT``).
    router_port: int = 8080
    #: MB per dyno of an app that sets no quota: the server hands its ``--memory-quota`` to
    #: the API as ``$CORRAL_MEMORY_QUOTA_MB``, so ``ps:memory`` can say the number in force.
    memory_quota_mb: int = 512
    #: Slugs of this many newest releases of each app stay on disk for rollbacks
    #: (``$CORRAL_KEEP_RELEASES``); older ones are removed after each deploy.
    keep_releases: int = KEEP_RELEASES
    #: A build whose slug (source plus its environment) is larger fails (``$CORRAL_SLUG_MAX_MB``).
    slug_max_mb: int = SLUG_MAX_MB
    #: Each app runs as a system user of its own (``$CORRAL_ISOLATION``, set by a server
    #: running as root for the services it starts; see :mod:`corral.appusers`).
    isolation: bool = False
    #: Dynos, one-offs and release phases run in cgroups of their own
    #: (``$CORRAL_KERNEL_LIMITS``, set by a server that found cgroups it can use).
    kernel_limits: bool = False
    #: Apps' user names are this prefix and the app name (``$CORRAL_USER_PREFIX``).
    user_prefix: str = USER_PREFIX
    #: The uids (and gids) apps' users get (``$CORRAL_UIDS``, ``LOW-HIGH``).
    uid_range: tuple[int, int] = UID_RANGE
    #: Where PostgreSQL's programs (initdb, postgres, psql, pg_dump) are
    #: (``$CORRAL_POSTGRESQL_BIN``); None: the newest ``/usr/lib/postgresql/*/bin``.
    postgresql_bin: Path | None = None
    #: The admin URL of a PostgreSQL server new database add-ons go to instead of the
    #: platform's own cluster (``$CORRAL_POSTGRESQL_SERVER``; ``addons:create --server``).
    postgresql_server: str | None = None

    @classmethod
    def load(cls, home: str | os.PathLike[str] | None = None) -> Settings:
        """Settings from an explicit ``home``, else ``$CORRAL_HOME``, else the default."""
        env = os.environ
        chosen = home or env.get("CORRAL_HOME") or DEFAULT_HOME
        return cls(
            home=Path(chosen).expanduser().resolve(),
            default_python=env.get("CORRAL_DEFAULT_PYTHON") or _running_python(),
            pyenv_root=Path(env.get("PYENV_ROOT") or Path.home() / ".pyenv"),
            domain=env.get("CORRAL_DOMAIN") or "localhost",
            router_port=_port(env.get("CORRAL_ROUTER_PORT") or "8080"),
            memory_quota_mb=_positive(
                env.get("CORRAL_MEMORY_QUOTA_MB") or "512",
                "CORRAL_MEMORY_QUOTA_MB",
                "a number of MB such as 512",
            ),
            keep_releases=_positive(
                env.get("CORRAL_KEEP_RELEASES") or str(KEEP_RELEASES),
                "CORRAL_KEEP_RELEASES",
                "a number of releases such as 10",
            ),
            slug_max_mb=_positive(
                env.get("CORRAL_SLUG_MAX_MB") or str(SLUG_MAX_MB),
                "CORRAL_SLUG_MAX_MB",
                "a number of MB such as 500",
            ),
            isolation=env.get("CORRAL_ISOLATION") == "1",
            kernel_limits=env.get("CORRAL_KERNEL_LIMITS") == "1",
            user_prefix=env.get("CORRAL_USER_PREFIX") or USER_PREFIX,
            uid_range=_uid_range(env.get("CORRAL_UIDS") or f"{UID_RANGE[0]}-{UID_RANGE[1]}"),
            postgresql_bin=Path(env["CORRAL_POSTGRESQL_BIN"])
            if env.get("CORRAL_POSTGRESQL_BIN")
            else None,
            postgresql_server=env.get("CORRAL_POSTGRESQL_SERVER") or None,
        )

    @property
    def platform_url(self) -> str:
        """Where the dashboard and API are reached through the router (what the CLI uses)."""
        return f"http://{self.domain}:{self.router_port}"

    def app_url(self, app: str) -> str:
        """Where the router serves ``app``: ``http://<app>.<domain>:<port>/``."""
        return f"http://{app}.{self.domain}:{self.router_port}/"

    @property
    def envs_dir(self) -> Path:
        """Immutable virtualenvs, one per dependency hash."""
        return self.home / "envs"

    @property
    def cache_dir(self) -> Path:
        """Installer caches shared by every build."""
        return self.home / "cache"

    @property
    def apps_dir(self) -> Path:
        """Per-app state: slugs, repositories."""
        return self.home / "apps"

    def slugs_dir(self, app: str) -> Path:
        """Where the slugs of ``app`` live."""
        return self.apps_dir / app / "slugs"

    def release_output_path(self, app: str, version: int) -> Path:
        """What the release phase of ``app``'s release ``version`` printed (``releases:output``)."""
        return self.apps_dir / app / "release-output" / f"v{version}.log"

    def logs_dir(self, app: str) -> Path:
        """The app's log files: one per dyno, plus the router's and the platform's."""
        return self.home / "logs" / app

    @property
    def builds_dir(self) -> Path:
        """One log file per build."""
        return self.home / "builds"

    @property
    def users_dir(self) -> Path:
        """Apps' users' private directories: ``HOME``, ``TMPDIR`` and installer cache."""
        return self.home / "users"

    @property
    def addons_dir(self) -> Path:
        """Add-on servers' data (the PostgreSQL cluster) and each add-on's backups."""
        return self.home / "addons"

    @property
    def run_dir(self) -> Path:
        """Runtime state: dyno exit statuses, the route table, pid files."""
        return self.home / "run"

    @property
    def certs_dir(self) -> Path:
        """Certificates, the ACME account key and challenge answers (root-only)."""
        return self.home / "certs"

    @property
    def routes_path(self) -> Path:
        """The route table the supervisor writes and the router reads."""
        return self.run_dir / "routes.json"
