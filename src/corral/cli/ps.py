"""``ps``, ``ps:scale``, ``ps:restart``, ``ps:stop``, ``ps:memory``: dynos and formation."""

from __future__ import annotations

import re
from dataclasses import dataclass

import click

from corral.cli.client import APP_OPTION, JSON_OPTION, ApiClient, ApiError, ago, app_path
from corral.cli.git import resolve_app
from corral.cli.output import Styled, action, console, echo_json, print_table
from corral.errors import UserError

# lazy type name, so `my-worker-1` is my-worker minus one and `web-1=2` sets web-1
_SCALE = re.compile(r"([a-z0-9_-]+?)([=+-])(\d+)")
_STATE_STYLE = {"up": "green", "starting": "yellow", "crashed": "red", "stopping": "yellow"}


@dataclass(frozen=True)
class ScaleChange:
    """One ``ps:scale`` argument: ``web=2`` sets, ``web+1`` / ``web-1`` moves by ``amount``."""

    process_type: str
    operator: str
    amount: int

    def applied(self, current: int | None) -> int:
        """The quantity after this change, from ``current`` (None: the type is not known)."""
        if self.operator == "=":
            return self.amount
        if current is None:
            raise UserError(
                f"The app has no process type {self.process_type} to scale by "
                f"{self.operator}{self.amount}; see the types with `corral ps:scale`."
            )
        quantity = current + self.amount if self.operator == "+" else current - self.amount
        if quantity < 0:
            raise UserError(
                f"{self.process_type} runs {current} dynos, so {self.process_type}-{self.amount} "
                f"would be below zero; scale to 0 with `corral ps:scale {self.process_type}=0`."
            )
        return quantity


def parse_scale(arguments: tuple[str, ...]) -> list[ScaleChange]:
    """``type=N``, ``type+N`` and ``type-N`` arguments; anything else is a UserError naming it."""
    changes: list[ScaleChange] = []
    for argument in arguments:
        match = _SCALE.fullmatch(argument.lower())
        if match and argument != argument.lower():
            raise UserError(
                f"{argument!r}: process type names are lower case; "
                f"scale with `corral ps:scale {argument.lower()}`."
            )
        if not match:
            raise UserError(
                f"{argument!r} is not TYPE=QUANTITY; scale like `corral ps:scale web=2 worker=1` "
                "(or web+1, web-1)."
            )
        changes.append(ScaleChange(match[1], match[2], int(match[3])))
    return changes


def _quantities(changes: list[ScaleChange], formation: list[dict]) -> dict[str, int]:
    current = {entry["type"]: int(entry["quantity"]) for entry in formation}
    quantities: dict[str, int] = {}
    for change in changes:
        # web+1 web+1 is web+2: each change starts from the one before it
        before = quantities.get(change.process_type, current.get(change.process_type))
        quantities[change.process_type] = change.applied(before)
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
    types: list[str] = []  # asked only for the hint of an app with no dynos
    with ApiClient.load() as api:
        dynos = api.get("/api/v1/platform/dynos" if platform else app_path(name, "dynos")) or []
        if not dynos and not platform and not as_json:
            types = [f["type"] for f in api.get(app_path(name, "formation")) or []]
    if as_json:
        echo_json(dynos)
    elif not dynos and platform:
        console.print("No platform services are recorded; is `corral server` running?")
    elif not dynos:
        console.print(_no_dynos_hint(name, types))
    else:
        _print_dynos(dynos, platform=platform)


def _no_dynos_hint(app: str, types: list[str]) -> str:
    """What to do about an app with no dynos: scale a type it has (``web`` only if it has one)."""
    if not types:
        return f"{app} has no dynos and no process types yet; deploy it first."
    kind = "web" if "web" in types else types[0]
    return f"{app} has no dynos; scale up with `corral ps:scale {kind}=1`."


def _print_dynos(dynos: list[dict], *, platform: bool) -> None:
    # the platform's services have no releases: their pid says more
    first, third = ("service", "pid") if platform else ("dyno", "release")
    rows = []
    for dyno in dynos:
        state = dyno.get("state") or ""
        rss = dyno.get("rss_bytes")
        cpu = dyno.get("cpu_percent")
        rows.append(
            (
                dyno.get("name") or "",
                Styled(state, _STATE_STYLE.get(state, "")),
                ago(dyno.get("since")),
                str(dyno.get(third) or ""),
                str(dyno.get("port") or ""),
                f"{rss / 1e6:.1f}" if rss is not None else "",
                f"{cpu:.1f}" if cpu is not None else "",
            )
        )
    print_table((first, "state", "since", third, "port", "RSS MB", "CPU%"), rows)


@click.command("ps:scale")
@APP_OPTION
@click.argument("quantities", nargs=-1, metavar="TYPE=N...")
@JSON_OPTION
def ps_scale(app: str | None, quantities: tuple[str, ...], as_json: bool) -> None:
    """Set how many dynos of each type run: web=2, web+1, web-1 (no arguments: show them)."""
    parsed = parse_scale(quantities)
    name = resolve_app(app)
    with ApiClient.load() as api:
        needs_current = not parsed or any(change.operator != "=" for change in parsed)
        formation = (api.get(app_path(name, "formation")) or []) if needs_current else []
        if parsed:
            changes = _quantities(parsed, formation)
            if as_json:
                formation = api.patch(app_path(name, "formation"), json=changes) or []
            else:
                with action("Scaling dynos") as done:
                    formation = api.patch(app_path(name, "formation"), json=changes) or []
                    running = ", ".join(f"{f['type']} at {f['quantity']}" for f in formation)
                    done.append(f"now running {running}")
                return
    if as_json:
        echo_json(formation)
    elif not formation:
        console.print(f"{name} has no process types yet; deploy it first.")
    else:
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
            info = api.get(app_path(name))
            quota, default = info.get("memory_quota_mb"), info.get("default_memory_quota_mb")
            if quota:
                click.echo(f"{quota} MB")
            elif default:
                click.echo(f"{default} MB (the server's default)")
            else:  # a server from before default_memory_quota_mb
                click.echo("the server's default (its --memory-quota)")
            return
        value = parse_memory(megabytes)
        with action(f"Setting the memory quota of {name}") as done:
            info = api.put(app_path(name, "memory"), json={"megabytes": value}) or {}
            default = info.get("default_memory_quota_mb")
            if value:
                done.append(f"{value} MB per dyno")
            else:
                done.append(
                    f"back to the default, {default} MB" if default else "back to the default"
                )


COMMANDS = [ps, ps_scale, ps_restart, ps_stop, ps_kill, ps_memory]
