"""``domains``, ``domains:add`` and ``domains:remove``: custom hostnames routed to an app."""

from __future__ import annotations

import click

from corral.cli.client import APP_OPTION, JSON_OPTION, ApiClient, app_path
from corral.cli.git import resolve_app
from corral.cli.output import action, console, echo_json


@click.command("domains")
@APP_OPTION
@JSON_OPTION
def domains_list(app: str | None, as_json: bool) -> None:
    """List the custom domains the router sends to the app."""
    name = resolve_app(app)
    with ApiClient.load() as api:
        domains = api.get(app_path(name, "domains")) or []
    if as_json:
        echo_json(domains)
        return
    console.print(f"=== {name} Custom Domains", style="bold")
    if not domains:
        console.print("none; add one with `corral domains:add www.example.com`.")
    for domain in domains:
        click.echo(domain["hostname"])


@click.command("domains:add")
@APP_OPTION
@click.argument("hostname")
def domains_add(app: str | None, hostname: str) -> None:
    """Route HOSTNAME to the app (point its DNS at this machine)."""
    name = resolve_app(app)
    with ApiClient.load() as api, action(f"Adding {hostname} to {name}"):
        api.post(app_path(name, "domains"), json={"hostname": hostname})
    console.print(f"Point the DNS of {hostname} at this server.")


@click.command("domains:remove")
@APP_OPTION
@click.argument("hostname")
def domains_remove(app: str | None, hostname: str) -> None:
    """Stop routing HOSTNAME to the app."""
    name = resolve_app(app)
    with ApiClient.load() as api, action(f"Removing {hostname} from {name}"):
        api.delete(app_path(name, "domains", hostname))


COMMANDS = [domains_list, domains_add, domains_remove]
