"""``login``, ``logout`` and ``whoami``: which corral server the CLI talks to, with which token."""

from __future__ import annotations

import os
import sys

import click

from corral.cli.client import ApiClient
from corral.credentials import Credentials, credentials_path, normalize_server
from corral.errors import UserError


def _describe(whoami: dict) -> str:
    token = whoami.get("token") or {}
    return f"token {token.get('name') or token.get('id') or '?'}"


def _read_token() -> str:
    # No terminal (a script, CI, `echo $T | corral login`): the token is stdin's first line;
    # prompting there would make getpass warn that it cannot hide what is typed.
    if not sys.stdin.isatty():
        return sys.stdin.readline().strip()
    return str(click.prompt("Token", hide_input=True, err=True, default="", show_default=False))


@click.command("login")
@click.option(
    "--server",
    envvar="CORRAL_SERVER",
    required=True,
    help="The server's URL, like http://127.0.0.1:8080 (default: $CORRAL_SERVER).",
)
@click.option(
    "--token",
    envvar="CORRAL_TOKEN",
    help="An API token (default: $CORRAL_TOKEN, else stdin's first line, else asked for).",
)
def login(server: str, token: str | None) -> None:
    """Check a token against a corral server and save both for the other commands."""
    url = normalize_server(server)
    token = (token or "").strip() or _read_token().strip()
    if not token:
        raise UserError(
            "No token given; pass --token TOKEN, set $CORRAL_TOKEN, or pipe it in "
            "(echo TOKEN | corral login --server URL)."
        )
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
