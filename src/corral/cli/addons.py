"""``addons``, ``addons:create``, ``addons:info``, ``addons:attach``, ``addons:detach`` and
``addons:destroy``: databases the platform runs for apps, attached as config vars."""

from __future__ import annotations

import sys
from typing import Any

import click

from corral.cli.attach import Session, run_attached
from corral.cli.client import APP_OPTION, JSON_OPTION, ApiClient, addon_path, app_path
from corral.cli.git import resolve_app
from corral.cli.output import action, console, echo_json, human_size, print_fields, print_table
from corral.cli.releases import NO_WAIT_OPTION, released
from corral.errors import UserError

AS_OPTION = click.option(
    "--as", "as_var", help="The config var to attach it as (default: DATABASE_URL if free)."
)


def _attached(addon: dict[str, Any]) -> str:
    return ", ".join(f"{a['app']} as {a['as']}" for a in addon.get("attachments", []))


def find_attachment(
    api: ApiClient, app: str, which: str | None, default: str, service: str
) -> tuple[str, str]:
    """(add-on name, config var) of the app's ``service`` add-on named ``which`` (its
    add-on's name or the config var it is attached as; ``default`` without one)."""
    wanted = which or default
    for addon in api.get(app_path(app, "addons")) or []:
        for attachment in addon.get("attachments", []):
            if attachment["app"] == app and wanted in (addon["name"], attachment["as"]):
                if addon["service"] != service:
                    raise UserError(f"{addon['name']} is a {addon['service']} add-on.")
                return addon["name"], attachment["as"]
    raise UserError(
        f"{app} has no {service} add-on {wanted}; create one with `corral addons:create "
        f"{service} -a {app}`, or see `corral addons -a {app}`."
    )


def console_session(
    app: str | None, which: str | None, kind: tuple[str, str, str], args: tuple[str, ...]
) -> int:
    """Run the add-on's console (``kind``: service, its default var, its program: psql,
    redis-cli) with ``args`` through the same path as ``corral run``; its exit status.
    A terminal gets an interactive session when no arguments are given."""
    service, default, program = kind
    name = resolve_app(app)
    terminal = sys.stdin.isatty() and sys.stdout.isatty() and not args
    with ApiClient.load() as api:
        _, var = find_attachment(api, name, which, default, service)
        session = Session(name, (program, *args), tty=terminal, route=program, extra=(("as", var),))
        return min(run_attached(api, session), 255)


def show_info(app: str | None, which: str | None, kind: tuple[str, str], as_json: bool) -> None:
    """``pg:info`` and ``redis:info``: the add-on's facts (``kind``: service, default var)."""
    name = resolve_app(app)
    with ApiClient.load() as api:
        addon, var = find_attachment(api, name, which, kind[1], kind[0])
        info = api.get(addon_path(addon))
    if as_json:
        echo_json(info)
        return
    console.print(f"=== {var}", style="bold")
    print_fields(addon_facts(info))


def _rolled(api: ApiClient, release: dict[str, Any] | None, done: list[str], wait: bool) -> None:
    if release:
        done.append(released(api, release, wait=wait))


@click.command("addons")
@APP_OPTION
@JSON_OPTION
def addons_list(app: str | None, as_json: bool) -> None:
    """List the add-ons attached to the app."""
    name = resolve_app(app)
    with ApiClient.load() as api:
        addons = api.get(app_path(name, "addons")) or []
    if as_json:
        echo_json(addons)
        return
    if not addons:
        console.print(
            f"{name} has no add-ons; create one with `corral addons:create postgresql`.",
        )
        return
    rows = [[a["name"], a["service"], a["app"], _attached(a)] for a in addons]
    print_table(["Add-on", "Service", "Owner", "Attached"], rows)


@click.command("addons:create")
@click.argument("service", metavar="SERVICE")
@APP_OPTION
@AS_OPTION
@click.option("--plan", help="redis: mini (64 MB, default), standard (256 MB), premium (1 GB).")
@click.option(
    "--server",
    envvar="CORRAL_ADDON_SERVER",
    help="postgresql: an existing server's admin URL (postgres://admin:pw@host/postgres) "
    "to make the database on, instead of the platform's own.",
)
@NO_WAIT_OPTION
def addons_create(
    service: str,
    app: str | None,
    as_var: str | None,
    plan: str | None,
    server: str | None,
    no_wait: bool,
) -> None:
    """Create an add-on (postgresql, redis) for the app and attach it as a config var.

    The app gets a new release with the var set, and its dynos roll over to it.
    """
    name = resolve_app(app)
    body = {"service": service, "as": as_var, "plan": plan, "server": server}
    with ApiClient.load() as api, action(f"Creating {service} for {name}") as done:
        answer = api.post(app_path(name, "addons"), json=body)
        addon = answer["addon"]
        done.append(f"{addon['name']} attached as {addon['as']}")
        _rolled(api, answer.get("release"), done, not no_wait)
    if service == "redis":
        hint = f"Connect with `corral redis:cli -a {name}`."
    else:
        hint = (
            f"Connect with `corral pg:psql -a {name}`; back it up with "
            f"`corral pg:backups:capture -a {name}`."
        )
    console.print(hint)


@click.command("addons:info")
@click.argument("addon")
@JSON_OPTION
def addons_info(addon: str, as_json: bool) -> None:
    """Show an add-on: its owner, attachments, version, size and connections."""
    with ApiClient.load() as api:
        info = api.get(addon_path(addon))
    if as_json:
        echo_json(info)
        return
    print_fields(addon_facts(info))


def addon_facts(info: dict[str, Any]) -> list[tuple[str, str]]:
    """The lines ``addons:info``, ``pg:info`` and ``redis:info`` show."""
    if info["service"] == "redis":
        return [
            ("Add-on", info["name"]),
            ("Service", f"redis {info.get('version', '')}".strip()),
            ("Plan", f"{info['plan']} (maxmemory {human_size(info.get('maxmemory', 0))})"),
            ("Owner", info["app"]),
            ("Attached", _attached(info)),
            ("Memory used", human_size(info.get("size", 0))),
            ("Keys", str(info.get("keys", 0))),
            ("Clients", str(info.get("connections", 0))),
            ("Created", info["created_at"]),
        ]
    return [
        ("Add-on", info["name"]),
        ("Service", f"{info['service']} {info.get('version', '')}".strip()),
        ("Plan", info["plan"]),
        ("Server", info.get("server", "platform")),
        ("Owner", info["app"]),
        ("Attached", _attached(info)),
        ("Size", human_size(info.get("size", 0))),
        ("Tables", str(info.get("tables", 0))),
        ("Connections", str(info.get("connections", 0))),
        ("Backups", str(info.get("backups", 0))),
        ("Created", info["created_at"]),
    ]


@click.command("addons:attach")
@click.argument("addon")
@APP_OPTION
@AS_OPTION
@NO_WAIT_OPTION
def addons_attach(addon: str, app: str | None, as_var: str | None, no_wait: bool) -> None:
    """Attach an existing add-on to another app too (they share the database)."""
    name = resolve_app(app)
    with ApiClient.load() as api, action(f"Attaching {addon} to {name}") as done:
        answer = api.post(addon_path(addon, "attachments"), json={"app": name, "as": as_var})
        done.append(f"as {answer['as']}")
        _rolled(api, answer.get("release"), done, not no_wait)


@click.command("addons:detach")
@click.argument("addon")
@APP_OPTION
@NO_WAIT_OPTION
def addons_detach(addon: str, app: str | None, no_wait: bool) -> None:
    """Detach an add-on from an app it is attached to (its config var is unset)."""
    name = resolve_app(app)
    with ApiClient.load() as api, action(f"Detaching {addon} from {name}") as done:
        answer = api.delete(addon_path(addon, "attachments", name))
        _rolled(api, answer.get("release"), done, not no_wait)


@click.command("addons:destroy")
@click.argument("addon")
@click.option("--confirm", help="The name of the add-on's app, to confirm.")
def addons_destroy(addon: str, confirm: str | None) -> None:
    """Destroy an add-on: a last backup, its config vars unset, its database dropped."""
    if confirm is None:
        raise UserError(
            f"Destroying {addon} deletes its database for good; pass --confirm APP "
            "(the app it belongs to) to go ahead."
        )
    with ApiClient.load() as api, action(f"Destroying {addon}") as done:
        answer = api.delete(addon_path(addon), params={"confirm": confirm})
        done.append(f"its last backup {answer['final_backup']} is kept {answer['kept_days']} days")


COMMANDS = [
    addons_list,
    addons_create,
    addons_info,
    addons_attach,
    addons_detach,
    addons_destroy,
]
