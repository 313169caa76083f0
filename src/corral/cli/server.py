"""``corral server``: run the platform (API and dashboard, supervisor, router)."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path

import click

from corral.config import LETS_ENCRYPT, Settings
from corral.errors import UserError


def _parse_bind(
    bind: str, flag: str = "--bind", example: str = "127.0.0.1:8080"
) -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{flag} {bind!r} is not HOST:PORT; pass e.g. {flag} {example}.")
    return host.strip("[]") or ("0.0.0.0" if flag == "--https-bind" else "127.0.0.1"), int(port)


def _https(
    enabled: bool, bind: str, directory: str, email: str | None, ca_bundle: Path | None,
    renew_after: float | None,
):  # fmt: skip
    from corral.https import HttpsOptions

    if not enabled:
        return None
    if not directory.startswith(("https://", "http://")):
        raise UserError(f"--acme-directory {directory!r} is not a URL; pass the directory's URL.")
    if ca_bundle is not None and not ca_bundle.is_file():
        raise UserError(f"--acme-ca-bundle {ca_bundle} is not a file; pass a PEM CA bundle.")
    if email is not None and "@" not in email:
        raise UserError(f"--acme-email {email!r} is not an address; pass e.g. you@example.org.")
    host, port = _parse_bind(bind, "--https-bind", ":443")
    bundle = None if ca_bundle is None else ca_bundle.resolve()
    return HttpsOptions(host, port, directory, email, bundle, renew_after)


@click.command("server")
@click.option(
    "--home", type=click.Path(path_type=Path), help="corral's home (default: $CORRAL_HOME)."
)
@click.option(
    "--bind", default=None, help="Router address [default: 127.0.0.1:8080; :80 with --https]."
)
@click.option("--https", "https", is_flag=True, help="Serve HTTPS with ACME certificates.")
@click.option("--https-bind", default=":443", show_default=True, help="HTTPS address.")
@click.option("--acme-email", default=None, help="Contact address of the ACME account.")
@click.option(
    "--acme-directory", default=LETS_ENCRYPT, show_default=True, help="ACME directory URL."
)
@click.option(
    "--acme-ca-bundle",
    type=click.Path(path_type=Path),
    help="CA bundle to trust the ACME server with (a test CA such as pebble).",
)
@click.option("--acme-renew-after", type=float, hidden=True, help="Renew certs this old (s).")
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
@click.option(
    "--print-systemd-unit",
    is_flag=True,
    help="Print a systemd unit running this server with these options, and exit.",
)
@click.pass_context
def server(
    ctx: click.Context,
    home: Path | None,
    bind: str | None,
    https: bool,
    https_bind: str,
    acme_email: str | None,
    acme_directory: str,
    acme_ca_bundle: Path | None,
    acme_renew_after: float | None,
    domain: str,
    boot_timeout: float,
    grace: float,
    memory_quota: int,
    max_body: int,
    client_connections: int,
    kernel_limits: bool,
    isolation: bool,
    print_systemd_unit: bool,
) -> None:
    """Run the platform: API and dashboard, supervisor and router, on one port."""
    # imported here: the platform's modules are heavy, and other commands never need them
    from corral.runtime.supervisor import SupervisorOptions
    from corral.server import ServerOptions, run_server

    host, port = _parse_bind(bind or ("0.0.0.0:80" if https else "127.0.0.1:8080"))
    tls = _https(https, https_bind, acme_directory, acme_email, acme_ca_bundle, acme_renew_after)
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
        https=tls,
        manager=SupervisorOptions(
            boot_timeout=boot_timeout, grace=grace, memory_quota=memory_quota << 20
        ),
    )
    settings = replace(Settings.load(home), domain=domain, router_port=port)
    if print_systemd_unit:
        from corral.systemd import unit_text

        command = [sys.executable, "-m", "corral", "server", *_given(ctx)]
        click.echo(unit_text(command, settings.home, root=os.geteuid() == 0), nl=False)
        return
    run_server(settings, options, say=click.echo)


def _given(ctx: click.Context) -> list[str]:
    """The options given that differ from their defaults, as flags again (paths absolute);
    not ``--home`` (the unit sets ``CORRAL_HOME``)."""
    words: list[str] = []
    for option in ctx.command.params:
        name = option.name
        if not isinstance(option, click.Option) or name in ("home", "print_systemd_unit"):
            continue
        value = ctx.params[name]  # type: ignore[index]
        if value is None or value == option.default:
            continue
        if option.is_flag:
            chosen = option.opts if value else option.secondary_opts
            words += chosen[:1]
            continue
        text = (
            str(value.resolve())
            if isinstance(value, Path)
            else f"{value:g}"
            if isinstance(value, float)
            else str(value)
        )
        words += [option.opts[0], text]
    return words


COMMANDS = [server]
