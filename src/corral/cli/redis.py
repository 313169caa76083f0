"""``redis:cli`` and ``redis:info``: an app's Redis add-on, named by its add-on name or the
config var it is attached as (``REDIS_URL`` by default)."""

from __future__ import annotations

import sys

import click

from corral.cli.addons import addon_facts, find_attachment
from corral.cli.attach import Session, run_attached
from corral.cli.client import APP_OPTION, JSON_OPTION, ApiClient, addon_path, console, echo_json
from corral.cli.git import resolve_app
from corral.cli.output import print_fields

REDIS = click.argument("redis", required=False, metavar="[REDIS]")


@click.command("redis:cli", context_settings={"ignore_unknown_options": True})
@REDIS
@APP_OPTION
@click.option("-c", "--command", "line", help="Run this command (`GET key`) and exit.")
@click.pass_context
def redis_cli(ctx: click.Context, redis: str | None, app: str | None, line: str | None) -> None:
    """Open redis-cli on the app's Redis, through the same path as `corral run`."""
    name = resolve_app(app)
    terminal = sys.stdin.isatty() and sys.stdout.isatty() and line is None
    with ApiClient.load() as api:
        _, var = find_attachment(api, name, redis, "REDIS_URL", "redis")
        command = ("redis-cli", *(line.split() if line else ()))
        session = Session(name, command, tty=terminal, route="redis-cli", extra=(("as", var),))
        status = run_attached(api, session)
    ctx.exit(min(status, 255))


@click.command("redis:info")
@REDIS
@APP_OPTION
@JSON_OPTION
def redis_info(redis: str | None, app: str | None, as_json: bool) -> None:
    """Show the app's Redis: version, memory used and allowed, keys, clients."""
    name = resolve_app(app)
    with ApiClient.load() as api:
        addon, var = find_attachment(api, name, redis, "REDIS_URL", "redis")
        info = api.get(addon_path(addon))
    if as_json:
        echo_json(info)
        return
    console.print(f"=== {var}", style="bold", markup=False)
    print_fields(addon_facts(info))


COMMANDS = [redis_cli, redis_info]
