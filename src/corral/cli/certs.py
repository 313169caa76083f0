"""``certs``, ``certs:add``, ``certs:remove``, ``certs:refresh``, ``certs:hsts``: HTTPS
certificates of an app's hosts (obtained by ``corral server --https``, or brought)."""

from __future__ import annotations

from pathlib import Path

import click

from corral.cli.client import APP_OPTION, JSON_OPTION, ApiClient, app_path
from corral.cli.git import resolve_app
from corral.cli.output import action, console, echo_json, print_table
from corral.errors import UserError


def _day(stamp: str | None) -> str:
    return "-" if not stamp else stamp[:16].replace("T", " ") + " UTC"


@click.command("certs")
@APP_OPTION
@JSON_OPTION
def certs_list(app: str | None, as_json: bool) -> None:
    """List the certificate of each of the app's hosts: issuer, expiry, state and why."""
    name = resolve_app(app)
    with ApiClient.load() as api:
        certs = api.get(app_path(name, "certs")) or []
    if as_json:
        echo_json(certs)
        return
    console.print(f"=== {name} Certificates", style="bold")
    rows = [
        (c["hostname"], c["issuer"] or "-", _day(c["expires_at"]), c["state"], c["reason"] or "")
        for c in certs
    ]
    print_table(("host", "issuer", "expires", "state", "reason"), rows, box=False)


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not text"
        raise UserError(
            f"Cannot read the {what} file {path} ({reason}); give a PEM file."
        ) from None


@click.command("certs:add")
@APP_OPTION
@click.argument("certificate", metavar="CERT")
@click.argument("key", metavar="KEY")
def certs_add(app: str | None, certificate: str, key: str) -> None:
    """Serve the app's hosts that CERT names with CERT (PEM chain) and KEY (PEM)."""
    name = resolve_app(app)
    body = {"certificate": _read(certificate, "certificate"), "key": _read(key, "key")}
    with ApiClient.load() as api, action(f"Adding a certificate to {name}"):
        installed = api.post(app_path(name, "certs"), json=body) or []
    hosts = ", ".join(c["hostname"] for c in installed)
    console.print(f"Serving {hosts} with it (expires {_day(installed[0]['expires_at'])}).",
                  )  # fmt: skip


@click.command("certs:remove")
@APP_OPTION
@click.argument("hostname")
def certs_remove(app: str | None, hostname: str) -> None:
    """Forget HOSTNAME's certificate (with --https, a new one is obtained)."""
    name = resolve_app(app)
    with ApiClient.load() as api, action(f"Removing the certificate of {hostname}"):
        api.delete(app_path(name, "certs", hostname))


@click.command("certs:refresh")
@APP_OPTION
@click.argument("hostname", required=False)
def certs_refresh(app: str | None, hostname: str | None) -> None:
    """Obtain the app's certificates (or HOSTNAME's) again now, from ACME."""
    name = resolve_app(app)
    body = {} if hostname is None else {"hostname": hostname}
    with ApiClient.load() as api, action(f"Asking for new certificates for {name}"):
        api.post(app_path(name, "cert-refresh"), json=body)
    console.print(f"Follow it with `corral certs -a {name}`.")


@click.command("certs:hsts")
@APP_OPTION
@click.argument("state", type=click.Choice(["on", "off"]))
def certs_hsts(app: str | None, state: str) -> None:
    """Send Strict-Transport-Security (one year) on the app's HTTPS answers, or stop."""
    name = resolve_app(app)
    with ApiClient.load() as api, action(f"Turning HSTS {state} for {name}"):
        api.put(app_path(name, "hsts"), json={"enabled": state == "on"})


COMMANDS = [certs_list, certs_add, certs_remove, certs_refresh, certs_hsts]
