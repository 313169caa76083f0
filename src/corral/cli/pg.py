"""``pg:psql``, ``pg:info``, ``pg:credentials:rotate`` and ``pg:backups*``: an app's
PostgreSQL add-on, named by its add-on name or the config var it is attached as
(``DATABASE_URL`` by default)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from corral.cli.addons import console_session, find_attachment, show_info
from corral.cli.client import APP_OPTION, JSON_OPTION, ApiClient, addon_path
from corral.cli.git import resolve_app
from corral.cli.output import action, console, echo_json, human_size, print_table
from corral.errors import UserError

DATABASE = click.argument("database", required=False, metavar="[DATABASE]")


def _attachment(api: ApiClient, app: str, database: str | None) -> tuple[str, str]:
    return find_attachment(api, app, database, "DATABASE_URL", "postgresql")


@click.command("pg:psql", context_settings={"ignore_unknown_options": True})
@DATABASE
@APP_OPTION
@click.option("-c", "--command", "sql", help="Run this SQL and exit (else an interactive psql).")
@click.pass_context
def pg_psql(ctx: click.Context, database: str | None, app: str | None, sql: str | None) -> None:
    """Open psql on the app's database, through the same path as `corral run`."""
    args = ("-c", sql) if sql is not None else ()
    ctx.exit(console_session(app, database, ("postgresql", "DATABASE_URL", "psql"), args))


@click.command("pg:info")
@DATABASE
@APP_OPTION
@JSON_OPTION
def pg_info(database: str | None, app: str | None, as_json: bool) -> None:
    """Show the app's database: version, size, tables, connections, backups."""
    show_info(app, database, ("postgresql", "DATABASE_URL"), as_json)


@click.command("pg:credentials:rotate")
@DATABASE
@APP_OPTION
def pg_rotate(database: str | None, app: str | None) -> None:
    """New credentials for the database: every app attached gets a release with them, and
    the old ones are revoked once those have rolled."""
    name = resolve_app(app)
    with ApiClient.load() as api:
        addon, _ = _attachment(api, name, database)
        with action(f"Rotating the credentials of {addon}") as done:
            # the server waits for the apps to roll before it revokes the old login
            answer = api.post(addon_path(addon, "credentials"), timeout=180)
            done += [f"{r['app']} {r['name']}" for r in answer.get("releases", []) if r]
            done.append("old credentials revoked" if answer["revoked"] else "old ones kept")
    for why in answer.get("kept_because", []):
        console.print(f"The old credentials still work: {why}.")
    if answer.get("kept_because"):
        raise UserError("Fix that, then run `corral pg:credentials:rotate` again to revoke them.")


def _backup_rows(backups: list[dict[str, Any]]) -> list[list[str]]:
    return [[b["id"], b["created_at"], human_size(b["size"])] for b in backups]


@click.command("pg:backups")
@DATABASE
@APP_OPTION
@JSON_OPTION
def pg_backups(database: str | None, app: str | None, as_json: bool) -> None:
    """List the database's backups, oldest first."""
    name = resolve_app(app)
    with ApiClient.load() as api:
        addon, _ = _attachment(api, name, database)
        backups = api.get(addon_path(addon, "backups")) or []
        planned = api.get(addon_path(addon)).get("schedule")
    if as_json:
        echo_json(backups)
        return
    if planned:
        console.print(
            f"Backed up every day at {planned['at']} UTC, the last {planned['keep']} kept.",
        )
    if not backups:
        console.print(f"{addon} has no backups; take one with `corral pg:backups:capture`.")
    else:
        print_table(["ID", "Taken", "Size"], _backup_rows(backups))


@click.command("pg:backups:capture")
@DATABASE
@APP_OPTION
def pg_backups_capture(database: str | None, app: str | None) -> None:
    """Back the database up now (pg_dump, custom format)."""
    name = resolve_app(app)
    with ApiClient.load() as api:
        addon, _ = _attachment(api, name, database)
        with action(f"Backing up {addon}") as done:
            backup = api.post(addon_path(addon, "backups"))
            done.append(f"{backup['id']} ({human_size(backup['size'])})")


@click.command("pg:backups:restore")
@click.argument("backup", required=False)
@DATABASE
@APP_OPTION
@click.option("--confirm", help="The app's name, to restore without being asked.")
def pg_backups_restore(
    backup: str | None, database: str | None, app: str | None, confirm: str | None
) -> None:
    """Replace the database's tables with a backup's (BACKUP, else the newest)."""
    name = resolve_app(app)
    with ApiClient.load() as api:
        addon, var = _attachment(api, name, database)
        info = api.get(addon_path(addon))
        which = backup or "the newest backup"
        warning = (
            f"This replaces every table of {addon} ({var} of {name}, {info['tables']} tables, "
            f"{info['connections']} connections open) with those of {which}; rows written "
            "since that backup are lost."
        )
        if confirm is None:
            console.print(warning)
            if not sys.stdin.isatty():
                raise UserError(f"Pass --confirm {name} to restore without a terminal.")
            confirm = click.prompt(f"Type {name} to go ahead", default="", show_default=False)
        if confirm != name:
            raise UserError(f"Not restored: --confirm {confirm} does not name {name}.")
        with action(f"Restoring {which} into {addon}") as done:
            restored = api.post(addon_path(addon, "restore"), json={"backup": backup})
            done.append(restored["id"])


@click.command("pg:backups:download")
@click.argument("backup")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@APP_OPTION
@click.option("--database", help="The add-on or config var (default: DATABASE_URL).")
def pg_backups_download(
    backup: str, file: Path | None, app: str | None, database: str | None
) -> None:
    """Download a backup to FILE (default: ADDON-BACKUP.dump); pg_restore reads it."""
    name = resolve_app(app)
    with ApiClient.load() as api:
        addon, _ = _attachment(api, name, database)
        target = file or Path(f"{addon}-{backup}.dump")
        try:
            with open(target, "wb") as out, action(f"Downloading {backup} to {target}") as done:
                done.append(human_size(api.download(addon_path(addon, "backups", backup), out)))
        except BaseException:
            target.unlink(missing_ok=True)  # no half a backup left looking like one
            raise


@click.command("pg:backups:schedule")
@DATABASE
@APP_OPTION
@click.option("--at", required=True, help="Time of day, HH:MM in UTC, such as 02:00.")
@click.option("--keep", type=int, default=7, show_default=True, help="Scheduled backups kept.")
def pg_backups_schedule(database: str | None, app: str | None, at: str, keep: int) -> None:
    """Back the database up every day at a time, keeping the last few of those backups."""
    name = resolve_app(app)
    with ApiClient.load() as api:
        addon, _ = _attachment(api, name, database)
        with action(f"Scheduling daily backups of {addon} at {at} UTC") as done:
            api.put(addon_path(addon, "schedule"), json={"at": at, "keep": keep})
            done.append(f"the last {keep} kept")


@click.command("pg:backups:unschedule")
@DATABASE
@APP_OPTION
def pg_backups_unschedule(database: str | None, app: str | None) -> None:
    """Stop the database's scheduled backups (those taken are kept)."""
    name = resolve_app(app)
    with ApiClient.load() as api:
        addon, _ = _attachment(api, name, database)
        with action(f"Unscheduling the backups of {addon}"):
            api.delete(addon_path(addon, "schedule"))


COMMANDS = [
    pg_psql,
    pg_info,
    pg_rotate,
    pg_backups,
    pg_backups_capture,
    pg_backups_restore,
    pg_backups_download,
    pg_backups_schedule,
    pg_backups_unschedule,
]
