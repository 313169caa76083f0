"""``redis:cli`` and ``redis:info``: an app's Redis add-on, named by its add-on name or the
config var it is attached as (``REDIS_URL`` by default)."""

from __future__ import annotations

import click

from corral.cli.addons import console_session, show_info
from corral.cli.client import APP_OPTION, JSON_OPTION

REDIS = click.argument("redis", required=False, metavar="[REDIS]")


@click.command("redis:cli", context_settings={"ignore_unknown_options": True})
@REDIS
@APP_OPTION
@click.option("-c", "--command", "line", help="Run this command (`GET key`) and exit.")
@click.pass_context
def redis_cli(ctx: click.Context, redis: str | None, app: str | None, line: str | None) -> None:
    """Open redis-cli on the app's Redis, through the same path as `corral run`."""
    args = tuple(line.split()) if line else ()
    ctx.exit(console_session(app, redis, ("redis", "REDIS_URL", "redis-cli"), args))


@click.command("redis:info")
@REDIS
@APP_OPTION
@JSON_OPTION
def redis_info(redis: str | None, app: str | None, as_json: bool) -> None:
    """Show the app's Redis: version, memory used and allowed, keys, clients."""
    show_info(app, redis, ("redis", "REDIS_URL"), as_json)


COMMANDS = [redis_cli, redis_info]
