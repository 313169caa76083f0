"""What ``corral local`` runs: which processes, on which ports, started how.

Pure planning first (``-m`` counts, process selection, foreman's ports: the base port
plus 100 per process type in Procfile order plus 1 per instance), then the two steps that
touch the machine: checking the ports are free and turning the plan into
:class:`~corral.local.process.ProcessSpec` for the :class:`~corral.local.manager.Manager`.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from corral.builder.slug import Slug
from corral.errors import UserError
from corral.local.process import ProcessSpec, shell
from corral.runtime.environ import process_environ

__all__ = [
    "DEFAULT_PORT",
    "LOOPBACK",
    "PORTS_PER_TYPE",
    "RELEASE",
    "PlannedProcess",
    "base_port",
    "check_ports_free",
    "parse_formation",
    "plan_processes",
    "process_specs",
]

#: The base port when neither ``-p`` nor ``$PORT`` gives one, as foreman's.
DEFAULT_PORT = 5000
#: Each process type gets a block of this many ports, so no type may run more instances.
PORTS_PER_TYPE = 100
#: Run by a deploy before the release starts, not a long-running process: opt-in locally.
RELEASE = "release"
#: Where ``corral local`` checks that ports are free, as gunicorn binds them.
LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class PlannedProcess:
    """One process ``corral local`` will start: ``web.2`` of type ``web`` on its port."""

    name: str
    type: str
    port: int


def parse_formation(values: Sequence[str]) -> dict[str, int]:
    """Parse ``-m`` values like ``web=2,worker=1`` into counts per process type."""
    counts: dict[str, int] = {}
    for value in values:
        for item in value.split(","):
            name, sep, count = item.strip().partition("=")
            name, count = name.strip(), count.strip()
            if not sep or not name or not count.isdigit():
                raise UserError(
                    f"-m expects NAME=COUNT pairs like web=2,worker=1 (got {item.strip()!r}); "
                    "fix that pair."
                )
            if int(count) > PORTS_PER_TYPE:
                raise UserError(
                    f"-m asks for {count} {name} processes; run at most {PORTS_PER_TYPE} "
                    "of one type (each type gets a block of 100 ports)."
                )
            counts[name] = int(count)
    return counts


def plan_processes(
    types: Sequence[str],
    selected: Sequence[str] = (),
    formation: Mapping[str, int] | None = None,
    base_port: int = DEFAULT_PORT,
) -> list[PlannedProcess]:
    """The processes to start, in Procfile order, each with its name and port.

    ``selected`` limits the run to those types (default: every type but ``release``);
    ``formation`` sets counts (``all`` applies to every selected type).
    """
    formation = dict(formation or {})
    known = list(types)
    listing = ", ".join(known)
    for name in [*selected, *formation]:
        if name not in known and name != "all":
            raise UserError(
                f"There is no process type {name!r}; name one of this app's: {listing}."
            )
    counts = {name: 1 for name in (selected or [t for t in known if t != RELEASE])}
    if "all" in formation:
        counts = dict.fromkeys(counts, formation.pop("all"))
    for name, count in formation.items():
        if selected and name not in counts and count > 0:
            raise UserError(
                f"-m gives {name}={count} but you asked to run only "
                f"{', '.join(selected)}; add {name} to the process names or drop it from -m."
            )
        counts[name] = count
    planned = [
        PlannedProcess(f"{name}.{n}", name, base_port + PORTS_PER_TYPE * known.index(name) + n - 1)
        for name in known
        for n in range(1, counts.get(name, 0) + 1)
    ]
    if not planned:
        raise UserError("Nothing to run: -m gives every process a count of 0; raise one to 1.")
    for process in planned:
        if process.port > 65535:
            raise UserError(
                f"{process.name} would get port {process.port}, above 65535; "
                "choose a lower base port with -p."
            )
    return planned


def check_ports_free(planned: Sequence[PlannedProcess], host: str = LOOPBACK) -> None:
    """Raise :class:`UserError` for the first planned port that cannot be bound on ``host``."""
    for process in planned:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            # As servers do, so a port still in TIME_WAIT does not count as taken.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, process.port))
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    raise UserError(
                        f"Port {process.port} (for {process.name}) is already in use on {host}; "
                        "stop what is using it or choose another base port with -p."
                    ) from None
                raise UserError(
                    f"Cannot use port {process.port} (for {process.name}) on {host}: "
                    f"{error.strerror}; choose another base port with -p."
                ) from None


def base_port(option: int | None, environ: Mapping[str, str]) -> int:
    """The base port: ``-p``, else ``$PORT`` (from the shell or ``.env``), else 5000."""
    if option is not None:
        return option
    value = environ.get("PORT", "").strip()
    if not value:
        return DEFAULT_PORT
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise UserError(f"PORT is {value!r}, not a port number; fix it or pass -p.")
    return int(value)


def process_specs(
    slug: Slug,
    planned: Sequence[PlannedProcess],
    *,
    config: Mapping[str, str],
    environ: Mapping[str, str],
    cwd: Path,
) -> list[ProcessSpec]:
    """What to start for each planned process: its Procfile command in the slug's environment."""
    return [
        ProcessSpec(
            process.name,
            shell(slug.process_types[process.type]),
            process_environ(
                slug, base=environ, config=config, port=process.port, dyno=process.name
            ),
            cwd,
        )
        for process in planned
    ]
