"""``login``, ``logout`` and ``whoami``: which corral server the CLI talks to, with which token."""

from __future__ import annotations

import os

import click

from corral.cli.client import ApiClient
from corral.credentials import Credentials, credentials_path, normalize_server
from corral.errors import UserError


def _describe(whoami: dict) -> str:
    token = whoami.get("token") or {}
    return f"token {token.get('name') or token.get('id') or '?'}"


@click.command("login")
@click.option("--server", required=True, help="The server's URL, like http://127.0.0.1:8080.")
@click.option("--token", help="An API token (asked for, hidden, when left out).")
def login(server: str, token: str | None) -> None:
    """Check a token against a corral server and save both for the other commands."""
    url = normalize_server(server)
    if not token:
        token = click.prompt("Token", hide_input=True, err=True).strip()
    if not token:
        raise UserError("No token given; pass --token or type it at the prompt.")
    credentials = Credentials(server=url, token=token)
    with ApiClient(credentials) as api:
        whoami = api.get("/api/v1/whoami")
    path = credentials.save()
    click.echo(f"Logged in to {url} as {_describe(whoami)} (saved in {path}).")


@click.command("logout")
def logout() -> None:
    """Forget the saved server and token."""
    path = credentials_path()
    saved = Credentials.read_file(path)
    try:
        path.unlink()
    except FileNotFoundError:
        click.echo("Not logged in; nothing to forget.")
    else:
        click.echo(f"Logged out of {saved.get('server') or 'the server'}.")
    if os.environ.get("CORRAL_TOKEN"):
        click.echo("$CORRAL_TOKEN is still set and still used; unset it as well.")


@click.command("whoami")
def whoami() -> None:
    """Show the server the CLI talks to and the token it uses."""
    with ApiClient.load() as api:
        answer = api.get("/api/v1/whoami")
    click.echo(f"{_describe(answer)} on {api.server}")


COMMANDS = [login, logout, whoami]
