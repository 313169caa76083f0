"""``git:remote`` and the git credential helper, plus :func:`resolve_app` for every ``-a`` option.

The credential helper hands git the token at push time, so it never lands in .git/config.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import click

from corral.cli.client import ApiClient, app_path, git_url
from corral.credentials import Credentials
from corral.errors import UserError

__all__ = [
    "COMMANDS",
    "add_remote",
    "app_from_remote",
    "in_work_tree",
    "remove_remote",
    "resolve_app",
]

DEFAULT_REMOTE = "corral"
_REMOTE_APP = re.compile(r"/git/([^/]+?)\.git/?$")


def _git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )


def in_work_tree(cwd: Path | None = None) -> bool:
    """Whether ``cwd`` (default: the current directory) is inside a git work tree."""
    try:
        result = _git("rev-parse", "--is-inside-work-tree", cwd=cwd)
    except FileNotFoundError:
        return False
    return result.returncode == 0 and result.stdout.strip() == "true"


def app_from_remote(remote: str = DEFAULT_REMOTE, cwd: Path | None = None) -> str | None:
    """The app the ``remote`` of the repository at ``cwd`` pushes to, if it is a corral remote."""
    try:
        result = _git("remote", "get-url", remote, cwd=cwd)
    except FileNotFoundError:
        return None
    if result.returncode != 0:
        return None
    match = _REMOTE_APP.search(result.stdout.strip())
    return match.group(1) if match else None


def resolve_app(app_option: str | None, cwd: Path | None = None) -> str:
    """The app a command acts on: ``-a``, else ``$CORRAL_APP``, else the ``corral`` git remote."""
    app = app_option or os.environ.get("CORRAL_APP") or app_from_remote(cwd=cwd)
    if not app:
        raise UserError(
            "No app given; pass -a APP or run inside a repository with a corral remote "
            "(corral git:remote -a APP)."
        )
    return app


def _helper_command() -> str:
    # The interpreter running corral now, so the helper works without `corral` on PATH.
    return f"!{shlex.quote(sys.executable)} -m corral git:credential"


def add_remote(server: str, app: str, remote: str = DEFAULT_REMOTE, cwd: Path | None = None) -> str:
    """Point ``remote`` at the app's repository and register the credential helper for it."""
    url = git_url(server, app)
    if _git("remote", "get-url", remote, cwd=cwd).returncode == 0:
        result = _git("remote", "set-url", remote, url, cwd=cwd)
    else:
        result = _git("remote", "add", remote, url, cwd=cwd)
    if result.returncode != 0:
        raise UserError(f"Could not set git remote {remote}: {result.stderr.strip()}")
    key = f"credential.{server.rstrip('/')}.helper"
    # An empty value first resets helpers inherited from global config for this URL.
    _git("config", "--local", "--unset-all", key, cwd=cwd)
    _git("config", "--local", "--add", key, "", cwd=cwd)
    _git("config", "--local", "--add", key, _helper_command(), cwd=cwd)
    return url


def _remote_urls(cwd: Path | None) -> list[str]:
    listed = _git("config", "--local", "--get-regexp", r"^remote\..*\.url$", cwd=cwd)
    return [line.partition(" ")[2] for line in listed.stdout.splitlines()]


def remove_remote(remote: str, cwd: Path | None = None) -> None:
    """Remove ``remote`` from the repository at ``cwd``, and the credential helper
    :func:`add_remote` registered for its server once no other remote pushes there."""
    url = _git("remote", "get-url", remote, cwd=cwd).stdout.strip()
    _git("remote", "remove", remote, cwd=cwd)
    server = url.rpartition("/git/")[0]
    if not server or any(other.startswith(f"{server}/git/") for other in _remote_urls(cwd)):
        return
    section = f"credential.{server}"
    _git("config", "--local", "--unset-all", f"{section}.helper", cwd=cwd)
    rest = _git("config", "--local", "--get-regexp", "^" + re.escape(section) + r"\.", cwd=cwd)
    if not rest.stdout.strip():  # nothing of the user's in it: drop the empty section too
        _git("config", "--local", "--remove-section", section, cwd=cwd)


@click.command("git:remote")
@click.option("-a", "--app", help="App to push to (default: $CORRAL_APP or the corral remote).")
@click.option("-r", "--remote", default=DEFAULT_REMOTE, show_default=True, help="Remote name.")
def git_remote(app: str | None, remote: str) -> None:
    """Add (or update) a git remote that pushes to APP on the corral server."""
    if not in_work_tree():
        raise UserError("Not inside a git repository; run `git init` first, or cd into one.")
    name = resolve_app(app)
    with ApiClient.load() as api:
        api.get(app_path(name))  # a clear "no such app" before touching the repository
        url = add_remote(api.server, name, remote)
    click.echo(f"set git remote {remote} to {url}")


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _addresses(host: str) -> set[str]:
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)}
    except (OSError, UnicodeError):
        return set()


def _is_loopback(address: str) -> bool:
    import ipaddress  # only git:credential asks; every command that resolves an app imports this

    return ipaddress.ip_address(address.partition("%")[0]).is_loopback


def same_server(saved: str, protocol: str, host: str) -> bool:
    """Whether git's ``protocol``/``host`` names the ``saved`` server, under any of its names.

    The remote keeps the name it was added with (``localhost:8080``) while a later login may
    use another (``127.0.0.1:8080``); both reach one server when scheme and port agree and
    the names resolve to a common address, or both to this machine's loopback.
    """
    server = urlsplit(saved)
    asked = urlsplit(f"{protocol.lower()}://{host}")
    try:
        ports = [(u.port or _DEFAULT_PORTS.get(u.scheme)) for u in (server, asked)]
    except ValueError:  # a port that is not a number
        return False
    if server.scheme != asked.scheme or ports[0] != ports[1]:
        return False
    names = [(u.hostname or "").lower() for u in (server, asked)]
    if names[0] == names[1]:
        return bool(names[0])
    ours, theirs = _addresses(names[0]), _addresses(names[1])
    if ours & theirs:
        return True
    return bool(ours and theirs) and all(_is_loopback(address) for address in ours | theirs)


def _read_request() -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in sys.stdin:
        line = line.rstrip("\r\n")
        if not line:
            break
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value
    return fields


@click.command("git:credential", hidden=True)
@click.argument("action")
def git_credential(action: str) -> None:
    """Git credential helper: answer ``get`` with the token for the corral server."""
    request = _read_request()
    if action != "get":
        return  # store/erase: the token lives in corral's credentials, not in git's
    try:
        credentials = Credentials.load()
    except UserError:
        return  # not logged in: stay silent so git can ask elsewhere
    if not same_server(credentials.server, request.get("protocol", ""), request.get("host", "")):
        return  # another server: its password is not ours to give
    sys.stdout.write(f"username=corral\npassword={credentials.token}\n")


COMMANDS = [git_remote, git_credential]
