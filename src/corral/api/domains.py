"""Custom domains: hostnames the router sends to an app besides ``<app>.<domain>``."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from corral.api import context
from corral.api.errors import BadRequest
from corral.api.objects import domain_json, json_body

__all__ = ["domains_blueprint"]

domains_blueprint = Blueprint("domains", __name__)


@domains_blueprint.get("/apps/<app>/domains")
def list_domains(app: str) -> ResponseReturnValue:
    """The app's custom domains."""
    return jsonify([domain_json(domain) for domain in context.store().domains(app)])


@domains_blueprint.post("/apps/<app>/domains")
def add_domain(app: str) -> ResponseReturnValue:
    """Route a hostname to the app."""
    hostname = json_body().get("hostname")
    if not isinstance(hostname, str):
        raise BadRequest('Give the hostname to add, such as {"hostname": "www.example.com"}.')
    domain = context.store().add_domain(app, hostname, platform_domain=context.settings().domain)
    return jsonify(domain_json(domain)), 201


@domains_blueprint.delete("/apps/<app>/domains/<hostname>")
def remove_domain(app: str, hostname: str) -> ResponseReturnValue:
    """Stop routing a hostname to the app."""
    context.store().remove_domain(app, hostname)
    return "", 204
