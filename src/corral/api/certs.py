"""Certificates of an app's hosts: their state, user-provided ones, refresh, HSTS.

The certificate service (:mod:`corral.certs`) obtains and renews ACME certificates; this
blueprint shows what it recorded and lets a user bring their own certificate for a host
(checked first: key and certificate belong together and the certificate names the host).
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from corral.api import context
from corral.api.errors import BadRequest
from corral.api.objects import cert_json, json_body
from corral.certs.pem import BadCertificate, covers, install, parse_pair
from corral.router.tls import CertLayout
from corral.store import Certificate, NotFound

__all__ = ["certificate_rows", "certs_blueprint"]

certs_blueprint = Blueprint("certs", __name__)


def _hosts(app: str) -> list[str]:
    store = context.store()
    store.get_app(app)
    own = f"{app}.{context.settings().domain}".lower()
    return [own] + [d.hostname for d in store.domains(app)]


def certificate_rows(app: str) -> list[Certificate]:
    """A row for each host of ``app``: the recorded one, else pending (not seen yet)."""
    rows = {c.hostname: c for c in context.store().certificates(app)}
    return [rows.get(host) or Certificate(host, app, "acme", "pending") for host in _hosts(app)]


@certs_blueprint.get("/apps/<app>/certs")
def list_certs(app: str) -> ResponseReturnValue:
    """The certificate of each host of the app."""
    return jsonify([cert_json(cert) for cert in certificate_rows(app)])


@certs_blueprint.post("/apps/<app>/certs")
def add_cert(app: str) -> ResponseReturnValue:
    """Install a certificate the user brings for the app's hosts it names."""
    body = json_body()
    chain, key = body.get("certificate"), body.get("key")
    if not isinstance(chain, str) or not isinstance(key, str):
        raise BadRequest(
            'Give the certificate and its key as PEM text: {"certificate": "...", "key": "..."}.'
        )
    pair = parse_pair(chain.encode(), key.encode())
    hosts = _hosts(app)
    covered = [host for host in hosts if covers(pair.names, host)]
    if not covered:
        names = ", ".join(pair.names) or "no DNS names"
        raise BadCertificate(
            f"The certificate is for {names}, none of {app}'s hosts ({', '.join(hosts)}); "
            f"add the domain first (`corral domains:add`) or bring a certificate for it."
        )
    store, layout = context.store(), CertLayout(context.settings().certs_dir)
    for host in covered:
        store.record_issued(host, "user", install(layout, host, pair), app)
    installed = [c for c in store.certificates(app) if c.hostname in covered]
    return jsonify([cert_json(cert) for cert in installed]), 201


@certs_blueprint.delete("/apps/<app>/certs/<hostname>")
def remove_cert(app: str, hostname: str) -> ResponseReturnValue:
    """Forget a host's certificate (an ACME one is obtained again)."""
    context.store().remove_certificate(app, hostname.lower().rstrip("."))
    return "", 204


# not under certs/: that is where a host name goes (DELETE .../certs/<hostname>)
@certs_blueprint.post("/apps/<app>/cert-refresh")
def refresh_certs(app: str) -> ResponseReturnValue:
    """Obtain the app's certificates again now (one host with ``hostname``)."""
    hostname = json_body().get("hostname")
    if hostname is not None and not isinstance(hostname, str):
        raise BadRequest('Give the host to refresh as {"hostname": "www.example.com"}, or none.')
    hosts = None if hostname is None else [hostname.lower().rstrip(".")]
    chosen = context.store().request_refresh(app, hosts)
    if hostname is not None and not chosen:
        raise NotFound(
            f"{hostname} is not a host of {app} with a certificate; "
            f"run `corral certs -a {app}` to list them."
        )
    return jsonify({"hostnames": chosen}), 202


@certs_blueprint.put("/apps/<app>/hsts")
def set_hsts(app: str) -> ResponseReturnValue:
    """Turn Strict-Transport-Security on or off for the app's HTTPS answers."""
    enabled = json_body().get("enabled")
    if not isinstance(enabled, bool):
        raise BadRequest('Say {"enabled": true} or {"enabled": false}.')
    context.store().set_hsts(app, enabled)
    return jsonify({"app": app, "hsts": enabled})
