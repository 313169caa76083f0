"""``ps``, ``ps:scale``, ``ps:restart``, ``ps:stop``, ``ps:memory``: dynos and formation."""

from __future__ import annotations

import re

import click
from rich.markup import escape
from rich.table import Table

from corral.cli.client import (
    APP_OPTION,
    JSON_OPTION,
    ApiClient,
    ApiError,
    action,
    ago,
    app_path,
    console,
    echo_json,
)
from corral.cli.git import resolve_app
from corral.errors import UserError

_SCALE = re.compile(r"([a-z0-9_-]+)=(\d+)")
_STATE_STYLE = {"up": "green", "starting": "yellow", "crashed": "red", "stopping": "yellow"}


def parse_scale(arguments: tuple[str, ...]) -> dict[str, int]:
    """``type=N`` arguments as a formation change; anything else is a UserError naming it."""
    quantities: dict[str, int] = {}
    for argument in arguments:
        match = _SCALE.fullmatch(argument)
        if not match:
            raise UserError(
                f"{argument!r} is not TYPE=QUANTITY; scale like `corral ps:scale web=2 worker=1`."
            )
        quantities[match.group(1)] = int(match.group(2))
    return quantities


@click.command("ps")
@APP_OPTION
@click.option(
    "--platform", is_flag=True, help="List the platform's own services (API, router) instead."
)
@JSON_OPTION
def ps(app: str | None, platform: bool, as_json: bool) -> None:
    """List the app's dynos: state, age, release, port, memory and CPU."""
    name = "the platform" if platform else resolve_app(app)
    with ApiClient.load() as api:
        dynos = api.get("/api/v1/platform/dynos" if platform else app_path(name, "dynos")) or []
    if as_json:
        echo_json(dynos)
    elif not dynos and platform:
        console.print("No platform services are recorded; is `corral server` running?")
    elif not dynos:
        console.print(f"{name} has no dynos; scale up with `corral ps:scale web=1`.", markup=False)
    else:
        console.print(_dyno_table(dynos, platform=platform))


def _dyno_table(dynos: list[dict], *, platform: bool) -> Table:
    # the platform's services have no releases: their pid says more
    first, third = ("service", "pid") if platform else ("dyno", "release")
    table = Table(first, "state", "since", third, "port", "RSS MB", "CPU%", header_style="bold")
    for dyno in dynos:
        state = dyno.get("state") or ""
        rss = dyno.get("rss_bytes")
        cpu = dyno.get("cpu_percent")
        table.add_row(
            escape(dyno.get("name") or ""),
            f"[{_STATE_STYLE.get(state, 'default')}]{escape(state)}[/]",
            ago(dyno.get("since")),
            escape(str(dyno.get(third) or "")),
            str(dyno.get("port") or ""),
            f"{rss / 1e6:.1f}" if rss is not None else "",
            f"{cpu:.1f}" if cpu is not None else "",
        )
    return table


@click.command("ps:scale")
@APP_OPTION
@click.argument("quantities", nargs=-1, metavar="TYPE=N...")
def ps_scale(app: str | None, quantities: tuple[str, ...]) -> None:
    """Set how many dynos of each process type run (no arguments: show the formation)."""
    changes = parse_scale(quantities)
    name = resolve_app(app)
    with ApiClient.load() as api:
        if not changes:
            formation = api.get(app_path(name, "formation")) or []
        else:
            with action("Scaling dynos") as done:
                formation = api.patch(app_path(name, "formation"), json=changes) or []
                running = ", ".join(f"{f['type']} at {f['quantity']}" for f in formation)
                done.append(f"now running {running}")
            return
    if not formation:
        console.print(f"{name} has no process types yet; deploy it first.", markup=False)
        return
    click.echo(" ".join(f"{f['type']}={f['quantity']}" for f in formation))


def _dyno_action(app: str | None, verb: str, target: str | None) -> None:
    name = resolve_app(app)
    with ApiClient.load() as api:
        gerund = {"restart": "Restarting", "stop": "Stopping"}[verb]
        try:
            with action(f"{gerund} {target or 'all dynos'} on {name}"):
                api.post(app_path(name, "dynos", verb), json={"target": target})
        except ApiError as error:
            # A 404 naming the target is the server's answer; any other 404 is a missing route.
            names_target = bool(error.id and target and target in error.message)
            unsupported = error.status == 405 or (error.status == 404 and not names_target)
            if unsupported:
                api.get(app_path(name))  # "no such app" wins over "not supported"
                raise UserError(f"This server does not support ps:{verb} yet.") from None
            raise


@click.command("ps:restart")
@APP_OPTION
@click.argument("target", required=False, metavar="[TYPE|DYNO]")
def ps_restart(app: str | None, target: str | None) -> None:
    """Restart the app's dynos: all, one process type (web) or one dyno (web.1)."""
    _dyno_action(app, "restart", target)


@click.command("ps:stop")
@APP_OPTION
@click.argument("target", metavar="TYPE|DYNO")
def ps_stop(app: str | None, target: str) -> None:
    """Stop one dyno (web.1) or every dyno of a type (web)."""
    _dyno_action(app, "stop", target)


@click.command("ps:kill")
@APP_OPTION
@click.argument("dyno", metavar="DYNO")
def ps_kill(app: str | None, dyno: str) -> None:
    """Stop a one-off dyno (run.1234): SIGTERM, then SIGKILL after a few seconds."""
    name = resolve_app(app)
    with ApiClient.load() as api, action(f"Stopping {dyno} on {name}"):
        api.delete(app_path(name, "one-offs", dyno))


def parse_memory(text: str) -> int | None:
    """``1024`` (MB) or ``default``; anything else is a UserError saying what to give."""
    if text == "default":
        return None
    if not text.isdigit():
        raise UserError(
            f"{text!r} is not a memory quota; give a number of MB (e.g. 1024) or default."
        )
    return int(text)


@click.command("ps:memory")
@APP_OPTION
@click.argument("megabytes", required=False, metavar="[MB|default]")
def ps_memory(app: str | None, megabytes: str | None) -> None:
    """Show or set the memory quota per dyno: over it a warning, over twice it a restart."""
    name = resolve_app(app)
    with ApiClient.load() as api:
        if megabytes is None:
            quota = api.get(app_path(name)).get("memory_quota_mb")
            click.echo(f"{quota} MB" if quota else "default (the server's --memory-quota)")
            return
        value = parse_memory(megabytes)
        with action(f"Setting the memory quota of {name}") as done:
            api.put(app_path(name, "memory"), json={"megabytes": value})
            done.append(f"{value} MB per dyno" if value else "back to the default")


COMMANDS = [ps, ps_scale, ps_restart, ps_stop, ps_kill, ps_memory]
