"""``releases``, ``releases:info``, ``releases:output``, ``rollback`` and ``freeze``: an app's
release history."""

from __future__ import annotations

import os
import time
from typing import Any

import click

from corral.cli.client import APP_OPTION, JSON_OPTION, ApiClient, ago, app_path
from corral.cli.git import resolve_app
from corral.cli.output import Styled, action, console, echo_json, print_fields, print_table
from corral.errors import UserError


def parse_version(text: str) -> int:
    """``v3`` or ``3`` as the release number 3; anything else is a UserError."""
    digits = text[1:] if text[:1] in ("v", "V") else text
    if not digits.isdigit() or int(digits) < 1:
        raise UserError(
            f"{text!r} is not a release version; pass one like v3 (see `corral releases`)."
        )
    return int(digits)


_STATUS_STYLE = {"succeeded": "green", "failed": "red", "pending": "yellow"}

#: How long a config change or rollback waits for its dynos to start: a couple of minutes
#: (the platform's own boot timeout is one), overridable for tests and slow machines.
VERDICT_WAIT = float(os.environ.get("CORRAL_RELEASE_WAIT", "150"))
_POLL = 0.5

NO_WAIT_OPTION = click.option(
    "--no-wait",
    is_flag=True,
    help="Return once the release is made, without waiting for its dynos to start.",
)


def await_verdict(api: ApiClient, release: dict[str, Any]) -> dict[str, Any]:
    """Poll ``release`` until its rollout is decided and return it succeeded.

    A failed rollout is a UserError with the platform's reason and the new dynos' last log
    lines; one still starting at the deadline is a UserError saying how to follow it.
    """
    app, name = release["app"], release.get("name") or f"v{release['version']}"
    deadline = time.monotonic() + VERDICT_WAIT
    while release.get("status") == "pending" and time.monotonic() < deadline:
        time.sleep(_POLL)
        release = api.get(app_path(app, "releases", str(release["version"])))
    if release.get("status") == "failed":
        why = release.get("failure_reason") or "its dynos did not start"
        raise UserError(
            f"{name} failed to start: {why}; the previous release keeps serving.",
            details=list(release.get("failure_excerpt") or []),
        )
    if release.get("status") == "pending":
        raise UserError(
            f"{name} is still starting; follow it with `corral logs --tail -a {app}` "
            f"(`corral releases -a {app}` shows when it is live)."
        )
    return release


def released(api: ApiClient, release: dict[str, Any], *, wait: bool) -> str:
    """What ``done`` is followed by: the release's name, once live unless ``wait`` is off."""
    name = release.get("name") or f"v{release['version']}"
    if release.get("status") != "pending":
        return name
    if not wait:
        app = release["app"]
        return f"{name} is rolling out (`corral releases -a {app}` shows when it is live)"
    return await_verdict(api, release).get("name") or name


@click.command("releases")
@APP_OPTION
@click.option(
    "-n",
    "--num",
    "limit",
    type=click.IntRange(min=1),
    default=15,
    show_default=True,
    help="How many releases to show, newest first.",
)
@JSON_OPTION
def releases_list(app: str | None, limit: int, as_json: bool) -> None:
    """List the app's releases, newest first."""
    name = resolve_app(app)
    with ApiClient.load() as api:
        releases = (api.get(app_path(name, "releases")) or [])[:limit]
    if as_json:
        echo_json(releases)
        return
    if not releases:
        console.print(
            f"{name} has no releases yet; deploy with `git push corral main`.",
        )
        return
    console.print(f"=== {name} Releases", style="bold")
    rows = [
        (
            Styled(release.get("name") or f"v{release['version']}", "bold"),
            release.get("description") or "",
            Styled(release.get("status") or "", _STATUS_STYLE.get(release.get("status"), "")),
            ago(release.get("created_at")),
        )
        for release in releases
    ]
    print_table(("version", "description", "status", "created"), rows, box=False)


def _chosen_version(api: ApiClient, app: str, version: str | None) -> int:
    """VERSION as a number, or the app's current release when it is left out."""
    if version:
        return parse_version(version)
    current = api.get(app_path(app)).get("current_release")
    if current is None:
        raise UserError(f"{app} has no releases yet; deploy with `git push corral main`.")
    return int(current)


@click.command("releases:info")
@APP_OPTION
@click.argument("version", required=False)
@JSON_OPTION
def releases_info(app: str | None, version: str | None, as_json: bool) -> None:
    """Show one release (default: the current one): slug, process types, config keys, packages."""
    name = resolve_app(app)
    with ApiClient.load() as api:
        number = _chosen_version(api, name, version)
        release = api.get(app_path(name, "releases", str(number)))
    if as_json:
        echo_json(release)
        return
    console.print(
        f"=== Release {release.get('name') or number} of {name}",
        style="bold",
    )
    processes = release.get("process_types") or {}
    rows = [
        ("Description", release.get("description") or ""),
        ("Status", release.get("status") or ""),
        ("Slug", release.get("slug_id") or "-"),
        ("Created", f"{release.get('created_at', '')} ({ago(release.get('created_at'))})"),
        ("Config keys", ", ".join(release.get("config_keys") or []) or "-"),
        ("Packages", str(len(release.get("freeze") or []))),
    ]
    rows += [(f"Process {kind}", command) for kind, command in processes.items()]
    print_fields(rows)


@click.command("releases:output")
@APP_OPTION
@click.argument("version", required=False)
def releases_output(app: str | None, version: str | None) -> None:
    """Print what the release phase of release VERSION (default: the current one) printed."""
    name = resolve_app(app)
    with ApiClient.load() as api:
        number = _chosen_version(api, name, version)
        text = api.get(app_path(name, "releases", str(number), "output")) or ""
    click.echo(text.rstrip("\n"))


@click.command("rollback")
@APP_OPTION
@click.argument("version", required=False)
@NO_WAIT_OPTION
def rollback(app: str | None, version: str | None, no_wait: bool) -> None:
    """Roll back to release VERSION (default: the one before the current), as a new release.

    Waits until its dynos have started; if they fail, the current release keeps serving.
    """
    name = resolve_app(app)
    number = parse_version(version) if version else None
    with ApiClient.load() as api:
        # Name the target before rolling back, so the line says which release came back.
        number = number or _previous_version(api, name)
        body = {"version": number} if number else {}  # none found: the server says why
        target = f"v{number}" if number else "the previous release"
        with action(f"Rolling back {name} to {target}") as done:
            release = api.post(app_path(name, "rollback"), json=body)
            done.append(released(api, release, wait=not no_wait))


def _previous_version(api: ApiClient, app: str) -> int | None:
    """The release a plain ``rollback`` restores: the newest succeeded one before the current."""
    current = api.get(app_path(app)).get("current_release")
    older = [
        release["version"]
        for release in api.get(app_path(app, "releases")) or []
        if current is not None
        and release["version"] < current
        and release.get("status") == "succeeded"
    ]
    return max(older, default=None)


@click.command("freeze")
@APP_OPTION
def freeze(app: str | None) -> None:
    """Print the pip freeze list of the current release."""
    name = resolve_app(app)
    with ApiClient.load() as api:
        text = api.get(app_path(name, "freeze")) or ""
    click.echo(text.rstrip("\n") if isinstance(text, str) else "\n".join(text))


COMMANDS = [releases_list, releases_info, releases_output, rollback, freeze]
