"""The records the store hands out: frozen dataclasses, plain values, no database handles.

Timestamps are seconds since the epoch (``time.time()``); the API and CLI format them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "Addon",
    "App",
    "Attachment",
    "Build",
    "BuildStatus",
    "Domain",
    "Dyno",
    "DynoState",
    "FormationEntry",
    "OneOff",
    "Release",
    "ReleaseStatus",
    "Token",
]

ReleaseStatus = Literal["pending", "succeeded", "failed"]
BuildStatus = Literal["pending", "running", "succeeded", "failed"]
DynoState = Literal["starting", "up", "crashed", "stopping"]


@dataclass(frozen=True)
class App:
    """An app: its name and which release it currently runs (``None`` before the first deploy)."""

    name: str
    created_at: float
    maintenance: bool = False
    current_release: int | None = None
    #: Memory per dyno in MB before R14/R15; None means the platform's default.
    memory_quota_mb: int | None = None


@dataclass(frozen=True)
class Release:
    """A slug plus a config snapshot, numbered v1, v2, … per app; never changed once made."""

    app: str
    version: int
    slug_id: str
    slug_path: Path
    description: str
    config: dict[str, str] = field(default_factory=dict)
    process_types: dict[str, str] = field(default_factory=dict)
    status: ReleaseStatus = "succeeded"
    created_at: float = 0.0
    #: Why the rollout failed (``web.1 exited while booting``); None unless it did and said.
    failure_reason: str | None = None
    #: The failed release's new dynos' last log lines, as ``web.1: message``.
    failure_excerpt: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The release as users see it: ``v3``."""
        return f"v{self.version}"


@dataclass(frozen=True)
class Build:
    """One run of the builder for an app, from a pushed ref to a slug (or a failure)."""

    id: str
    app: str
    status: BuildStatus
    source_ref: str
    slug_id: str | None
    log_path: Path | None
    created_at: float
    finished_at: float | None = None


@dataclass(frozen=True)
class FormationEntry:
    """How many dynos of one process type the app should run."""

    app: str
    process_type: str
    quantity: int


@dataclass(frozen=True)
class Domain:
    """A custom hostname the router sends to an app."""

    hostname: str
    app: str


@dataclass(frozen=True)
class Dyno:
    """A dyno as the supervisor last observed it (``pid_start_time`` guards against pid reuse)."""

    app: str
    name: str
    process_type: str
    release_version: int
    pid: int | None
    pid_start_time: float | None
    port: int | None
    state: DynoState
    restarts: int = 0
    next_restart_at: float | None = None
    since: float = 0.0


@dataclass(frozen=True)
class OneOff:
    """A one-off dyno (``run.1234``) as the API that started it recorded it."""

    app: str
    name: str
    command: str
    release_version: int
    pid: int
    pid_start_time: float
    #: Whether a ``corral run`` session holds it (else ``run:detached``: logs only).
    attached: bool
    started_at: float


@dataclass(frozen=True)
class Token:
    """An API token's public part; the secret is shown once at creation and never stored."""

    id: str
    name: str
    created_at: float


@dataclass(frozen=True)
class Addon:
    """An add-on: a database of the platform's (or a given server's) owned by one app."""

    name: str
    app: str
    service: str
    plan: str
    #: The connection URL, password included: the store is the platform's user's only.
    url: str
    created_at: float
    #: The admin URL of the server it is on (``--server``); None: the platform's cluster.
    server: str | None = None


@dataclass(frozen=True)
class Attachment:
    """An add-on attached to an app as the config var ``var``."""

    addon: str
    app: str
    var: str
