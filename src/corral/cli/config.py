"""``config``, ``config:get``, ``config:set`` and ``config:unset``: an app's config vars."""

from __future__ import annotations

import shlex
from typing import Any

import click

from corral.cli.client import APP_OPTION, JSON_OPTION, ApiClient, app_path
from corral.cli.git import resolve_app
from corral.cli.output import Styled, action, console, echo_json
from corral.cli.releases import NO_WAIT_OPTION, released
from corral.errors import UserError


def parse_assignments(
    arguments: tuple[str, ...], *, example: str = "corral config:set SECRET_KEY=abc123"
) -> dict[str, str]:
    """``KEY=value`` arguments as a dict; one without ``=`` or without a key is a UserError
    whose hint is ``example``."""
    config: dict[str, str] = {}
    for argument in arguments:
        key, sep, value = argument.partition("=")
        if not sep or not key:
            raise UserError(f"{argument!r} is not KEY=value; write config vars like `{example}`.")
        config[key] = value
    return config


def joined(names: list[str]) -> str:
    """``A``, ``A and B``, ``A, B and C``."""
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def _print_vars(config: dict[str, Any]) -> None:
    width = max((len(key) for key in config), default=0) + 1
    for key, value in sorted(config.items()):
        console.print(Styled(f"{key + ':':<{width}}", "green"), f" {value}")


def _change(
    app: str | None, changes: dict[str, str | None], verb: str, *, wait: bool
) -> dict[str, Any]:
    """PATCH the config; a deployed app's new release is waited for unless ``wait`` is off."""
    name = resolve_app(app)
    with (
        ApiClient.load() as api,
        action(f"{verb} {joined(list(changes))} and restarting {name}") as done,
    ):
        answer = api.patch(app_path(name, "config"), json=changes)
        release = answer.get("release") if isinstance(answer, dict) else None
        if release:
            done.append(released(api, release, wait=wait))
    return answer.get("config", {}) if isinstance(answer, dict) else {}


@click.command("config")
@APP_OPTION
@JSON_OPTION
@click.option("-s", "--shell", is_flag=True, help="Print KEY=value lines for a shell or .env.")
def config_show(app: str | None, as_json: bool, shell: bool) -> None:
    """Show the app's config vars."""
    name = resolve_app(app)
    with ApiClient.load() as api:
        config = api.get(app_path(name, "config")) or {}
    if as_json:
        echo_json(config)
    elif shell:
        for key, value in sorted(config.items()):
            click.echo(f"{key}={shlex.quote(str(value))}")
    else:
        console.print(f"=== {name} Config Vars", style="bold")
        _print_vars(config)


@click.command("config:get")
@APP_OPTION
@click.argument("key")
def config_get(app: str | None, key: str) -> None:
    """Print the value of one config var."""
    name = resolve_app(app)
    with ApiClient.load() as api:
        config = api.get(app_path(name, "config")) or {}
    if key not in config:
        raise UserError(
            f"{name} has no config var {key}; set it with `corral config:set {key}=...`."
        )
    click.echo(config[key])


@click.command("config:set")
@APP_OPTION
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
@NO_WAIT_OPTION
def config_set(app: str | None, assignments: tuple[str, ...], no_wait: bool) -> None:
    """Set config vars and restart the app's dynos with them (a new release).

    Waits until the new dynos have started; if they fail, the old release keeps serving.
    """
    changes = parse_assignments(assignments)
    config = _change(app, dict(changes), "Setting", wait=not no_wait)
    _print_vars({key: config.get(key, value) for key, value in changes.items()})


@click.command("config:unset")
@APP_OPTION
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@NO_WAIT_OPTION
def config_unset(app: str | None, keys: tuple[str, ...], no_wait: bool) -> None:
    """Remove config vars and restart the app's dynos without them (a new release).

    Waits until the new dynos have started; if they fail, the old release keeps serving.
    """
    _change(app, dict.fromkeys(keys), "Unsetting", wait=not no_wait)


COMMANDS = [config_show, config_get, config_set, config_unset]
