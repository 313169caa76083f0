"""``corral server``: run the platform (API and dashboard, supervisor, router)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from corral.config import Settings
from corral.errors import UserError


def _parse_bind(bind: str) -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--bind {bind!r} is not HOST:PORT; pass e.g. --bind 127.0.0.1:8080.")
    return host or "127.0.0.1", int(port)


@click.command("server")
@click.option(
    "--home", type=click.Path(path_type=Path), help="corral's home (default: $CORRAL_HOME)."
)
@click.option("--bind", default="127.0.0.1:8080", show_default=True, help="Router address.")
@click.option("--domain", default="localhost", show_default=True, help="Apps are <app>.<domain>.")
@click.option("--boot-timeout", default=60.0, show_default=True, help="Seconds to pass health.")
@click.option("--grace", default=30.0, show_default=True, help="Seconds between SIGTERM and KILL.")
@click.option("--memory-quota", default=512, show_default=True, help="MB per dyno (default).")
@click.option(
    "--max-body", default=512, show_default=True, help="MB: the largest request body (413)."
)
@click.option(
    "--client-connections",
    default=256,
    show_default=True,
    help="Connections one client address may hold at the router (0: no cap).",
)
@click.option(
    "--kernel-limits/--no-kernel-limits",
    default=True,
    show_default=True,
    help="As root: a cgroup per dyno holding it to its memory, pids and CPU share.",
)
@click.option(
    "--isolation/--no-isolation",
    default=True,
    show_default=True,
    help="As root: each app runs as a system user of its own (off: as root, development only).",
)
def server(
    home: Path | None,
    bind: str,
    domain: str,
    boot_timeout: float,
    grace: float,
    memory_quota: int,
    max_body: int,
    client_connections: int,
    kernel_limits: bool,
    isolation: bool,
) -> None:
    """Run the platform: API and dashboard, supervisor and router, on one port."""
    # imported here: the platform's modules are heavy, and other commands never need them
    from corral.runtime.supervisor import SupervisorOptions
    from corral.server import ServerOptions, run_server

    host, port = _parse_bind(bind)
    for flag, value in (("--boot-timeout", boot_timeout), ("--grace", grace)):
        if not value > 0:
            raise UserError(f"{flag} is {value:g}; pass a number of seconds above 0.")
    for flag, size in (("--memory-quota", memory_quota), ("--max-body", max_body)):
        if size <= 0:
            raise UserError(f"{flag} is {size}; pass a number of MB above 0.")
    if client_connections < 0:
        raise UserError(
            f"--client-connections is {client_connections}; pass 0 (no cap) or a number above."
        )
    options = ServerOptions(
        host=host,
        kernel_limits=kernel_limits,
        isolation=isolation,
        max_body_mb=max_body,
        client_connections=client_connections,
        manager=SupervisorOptions(
            boot_timeout=boot_timeout, grace=grace, memory_quota=memory_quota << 20
        ),
    )
    settings = replace(Settings.load(home), domain=domain, router_port=port)
    run_server(settings, options, say=click.echo)


COMMANDS = [server]
