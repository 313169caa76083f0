"""The ``apps`` topic: list, create, info, destroy and rename apps; ``open``; maintenance."""

from __future__ import annotations

import contextlib
import sys

import click

from corral.cli.client import APP_OPTION, JSON_OPTION, ApiClient, ago, app_path, git_url
from corral.cli.git import (
    DEFAULT_REMOTE,
    add_remote,
    app_from_remote,
    in_work_tree,
    remove_remote,
    resolve_app,
)
from corral.cli.output import (
    Styled,
    action,
    console,
    echo_json,
    human_size,
    print_fields,
    print_table,
)
from corral.errors import UserError


def _release_name(version: int | None) -> str:
    return f"v{version}" if version is not None else "-"


@click.command("apps")
@JSON_OPTION
def apps_list(as_json: bool) -> None:
    """List the apps on the server."""
    with ApiClient.load() as api:
        apps = api.get("/api/v1/apps")
    if as_json:
        echo_json(apps)
        return
    if not apps:
        console.print("No apps yet; create one with `corral apps:create NAME`.")
        return
    rows = [
        (
            app["name"],
            app.get("web_url") or "",
            _release_name(app.get("current_release")),
            Styled("on", "yellow") if app.get("maintenance") else "off",
            ago(app.get("created_at")),
        )
        for app in apps
    ]
    print_table(("name", "url", "release", "maintenance", "created"), rows)


@click.command("apps:create")
@click.argument("name", required=False)
@click.option("-r", "--remote", default=DEFAULT_REMOTE, show_default=True, help="Git remote name.")
@click.option("--no-remote", is_flag=True, help="Do not add a git remote.")
@JSON_OPTION
def apps_create(name: str | None, remote: str, no_remote: bool, as_json: bool) -> None:
    """Create an app (a random name when NAME is left out); inside a git repo, add its remote."""
    remote_set = not no_remote and in_work_tree()
    with ApiClient.load() as api:
        if as_json:
            app = api.post("/api/v1/apps", json={"name": name} if name else {})
        else:
            with action(f"Creating {name or 'app'}") as done:
                app = api.post("/api/v1/apps", json={"name": name} if name else {})
                done.append(app["name"])
        repo = git_url(api.server, app["name"])
        if remote_set:
            add_remote(api.server, app["name"], remote)
    if as_json:
        echo_json(app)
        return
    console.print(f"{app.get('web_url', '')} | {repo}")
    if remote_set:
        console.print(f"Git remote {remote} added; deploy with `git push {remote} main`.")


@click.command("apps:info")
@APP_OPTION
@JSON_OPTION
def apps_info(app: str | None, as_json: bool) -> None:
    """Show an app: URLs, current release, formation, dynos and domains."""
    name = resolve_app(app)
    with ApiClient.load() as api:
        info = api.get(app_path(name))
        repo = git_url(api.server, name)
    if as_json:
        echo_json(info)
        return
    release = info.get("release") or {}
    formation = ", ".join(f"{f['type']}={f['quantity']}" for f in info.get("formation") or [])
    dynos = info.get("dynos") or []
    states = ", ".join(f"{d['name']} {d['state']}" for d in dynos)
    domains = ", ".join(d["hostname"] for d in info.get("domains") or [])
    disk = info.get("disk_use") or {}
    used = (
        f"{human_size(disk['total'])} (slugs {human_size(disk['slugs'])}, repository "
        f"{human_size(disk['repo'])}, logs {human_size(disk['logs'])})"
        if disk
        else "-"
    )
    console.print(f"=== {info['name']}", style="bold")
    print_fields(
        [
            ("Web URL", info.get("web_url") or ""),
            ("Git URL", repo),
            ("Release", release.get("name") or "none yet (deploy with `git push corral main`)"),
            ("Description", release.get("description") or ""),
            ("Formation", formation or "-"),
            ("Dynos", states or "-"),
            ("Domains", domains or "-"),
            ("Maintenance", "on" if info.get("maintenance") else "off"),
            ("Disk use", used),
            ("Created", info.get("created_at") or ""),
        ]
    )


@click.command("apps:destroy")
@click.argument("name", required=False)
@APP_OPTION
@click.option("--confirm", help="The app's name again, to confirm.")
def apps_destroy(name: str | None, app: str | None, confirm: str | None) -> None:
    """Destroy an app: stop its dynos and delete its releases, config and files."""
    target = name or app
    if not target:
        raise UserError("Name the app to destroy: corral apps:destroy NAME --confirm NAME.")
    if confirm is None:
        raise UserError(
            f"Destroying {target} deletes its releases, config and files for good; "
            f"pass --confirm {target} to go ahead."
        )
    if confirm != target:
        raise UserError(
            f"--confirm {confirm} does not match the app {target}; "
            f"pass --confirm {target} to destroy it."
        )
    with ApiClient.load() as api, action(f"Destroying {target}"):
        api.delete(app_path(target))
    if in_work_tree() and app_from_remote() == target:
        remove_remote(DEFAULT_REMOTE)  # it points at a repository that is gone
        console.print(f"Removed git remote {DEFAULT_REMOTE}.")


@click.command("apps:rename")
@click.argument("names", nargs=-1, metavar="[OLD] NEW")
@APP_OPTION
def apps_rename(names: tuple[str, ...], app: str | None) -> None:
    """Rename an app: `apps:rename OLD NEW`, or `apps:rename NEW -a OLD`; dynos keep serving."""
    if len(names) == 2 and app is None:
        old, new = names
    elif len(names) == 1:
        old, new = resolve_app(app), names[0]
    else:
        raise UserError("Give the old and the new name: corral apps:rename OLD NEW.")
    with ApiClient.load() as api:
        with action(f"Renaming {old} to {new}"):
            renamed = api.patch(app_path(old), json={"name": new})
        console.print(f"{renamed.get('web_url', '')} | {git_url(api.server, new)}")
        if in_work_tree() and app_from_remote() == old:
            add_remote(api.server, new, DEFAULT_REMOTE)
            console.print(f"Git remote {DEFAULT_REMOTE} updated.")


@click.command("open")
@APP_OPTION
def open_app(app: str | None) -> None:
    """Print the app's URL and open it in a browser when run from a terminal."""
    name = resolve_app(app)
    with ApiClient.load() as api:
        url = api.get(app_path(name)).get("web_url") or ""
    click.echo(url)
    if url and sys.stdout.isatty():
        import webbrowser  # only here: it takes longer to import than most commands run

        with contextlib.suppress(webbrowser.Error):  # the printed URL is the fallback
            webbrowser.open(url)


def _set_maintenance(app: str | None, enabled: bool) -> None:
    name = resolve_app(app)
    verb = "Enabling" if enabled else "Disabling"
    with ApiClient.load() as api, action(f"{verb} maintenance mode for {name}"):
        api.put(app_path(name, "maintenance"), json={"enabled": enabled})


@click.command("maintenance")
@APP_OPTION
def maintenance(app: str | None) -> None:
    """Show whether the app is in maintenance mode (on or off)."""
    name = resolve_app(app)
    with ApiClient.load() as api:
        info = api.get(app_path(name))
    click.echo("on" if info.get("maintenance") else "off")


@click.command("maintenance:on")
@APP_OPTION
def maintenance_on(app: str | None) -> None:
    """Put the app in maintenance mode: the router answers with a maintenance page."""
    _set_maintenance(app, True)


@click.command("maintenance:off")
@APP_OPTION
def maintenance_off(app: str | None) -> None:
    """Take the app out of maintenance mode."""
    _set_maintenance(app, False)


COMMANDS = [
    apps_list,
    apps_create,
    apps_info,
    apps_destroy,
    apps_rename,
    open_app,
    maintenance,
    maintenance_on,
    maintenance_off,
]
