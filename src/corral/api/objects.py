"""The JSON shapes of the API's objects (docs/api.md, "Objects") and of request bodies."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from flask import request

from corral.api.errors import BadRequest
from corral.builder.slug import load_slug
from corral.config import Settings
from corral.errors import UserError
from corral.numbers import MAX_STORED_INT, whole_number
from corral.store import App, Build, Certificate, Domain, FormationEntry, Release, Token

__all__ = [
    "PROCESS_TYPE",
    "app_json",
    "build_json",
    "command_field",
    "domain_json",
    "formation_json",
    "iso",
    "json_body",
    "json_int",
    "release_json",
    "release_number",
    "slug_freeze",
    "token_json",
    "whole_number",
]


def iso(timestamp: float | None) -> str | None:
    """A store timestamp (epoch seconds) as an ISO 8601 UTC string."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def json_int(value: Any) -> Any:
    """``value`` with an integral JSON number (``3.0``) as the int it is (JSON and JSON
    Schema do not tell 3 from 3.0); anything else unchanged, for the caller to judge."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def release_number(value: object) -> int | None:
    """``3`` from ``3``, ``"3"`` or ``"v3"``: a version a release can have (1 to 2**63 - 1);
    None for anything else, so no value a client sends reaches the store unchecked."""
    if isinstance(value, str):
        value = whole_number(value.removeprefix("v"))
    value = json_int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 1 <= value <= MAX_STORED_INT else None


#: A process type name, as a Procfile may spell it (builder/procfile.py).
PROCESS_TYPE = re.compile(r"[A-Za-z0-9_-]+")


def command_field(value: Any) -> list[str]:
    """The ``command`` of a one-off: a non-empty list of strings, none holding a NUL
    (no process can take one), the first naming a program; else :class:`BadRequest`."""
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(word, str) and "\0" not in word for word in value)
        or not value[0]
    ):
        raise BadRequest(
            'Give the command as a non-empty list of strings, such as {"command": ["bash"]}; '
            "with the CLI: `corral run -- COMMAND`."
        )
    return value


def json_body() -> dict[str, Any]:
    """The request's JSON object body (``{}`` when empty), or :class:`BadRequest`."""
    if not request.get_data(cache=True).strip():
        return {}
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise BadRequest('The request body must be a JSON object, such as {"name": "hello"}.')
    return data


def app_json(app: App, settings: Settings) -> dict[str, Any]:
    """An ``App`` object; its web URL is the settings' :meth:`~Settings.app_url`."""
    return {
        "name": app.name,
        "created_at": iso(app.created_at),
        "maintenance": app.maintenance,
        "web_url": settings.app_url(app.name),
        "current_release": app.current_release,
        "memory_quota_mb": app.memory_quota_mb,
        # the number in force when the app sets none: the server's --memory-quota
        "default_memory_quota_mb": settings.memory_quota_mb,
    }


def release_json(release: Release) -> dict[str, Any]:
    """A ``Release`` object: config keys only, never their values; why it failed, if it did."""
    return {
        "app": release.app,
        "version": release.version,
        "name": release.name,
        "description": release.description,
        "status": release.status,
        "slug_id": release.slug_id,
        "process_types": dict(release.process_types),
        "config_keys": sorted(release.config),
        "created_at": iso(release.created_at),
        "failure_reason": release.failure_reason,
        "failure_excerpt": list(release.failure_excerpt),
    }


def slug_freeze(release: Release) -> list[str] | None:
    """The ``pip freeze`` list recorded in the release's slug, or None if the slug is gone."""
    try:
        return list(load_slug(release.slug_path).freeze)
    except (UserError, OSError, ValueError, TypeError):
        return None


def formation_json(entry: FormationEntry, release: Release | None) -> dict[str, Any]:
    """A ``Formation`` entry, with the command the current release runs for the type."""
    command = release.process_types.get(entry.process_type, "") if release else ""
    return {"type": entry.process_type, "quantity": entry.quantity, "command": command}


def cert_json(cert: Certificate) -> dict[str, Any]:
    """A ``Certificate`` object."""
    return {
        "hostname": cert.hostname,
        "app": cert.app,
        "source": cert.source,
        "state": cert.state,
        "reason": cert.reason,
        "issuer": cert.issuer,
        "expires_at": iso(cert.not_after),
        "next_attempt_at": iso(cert.next_attempt_at or None),
    }


def domain_json(domain: Domain) -> dict[str, Any]:
    """A ``Domain`` object."""
    return {"hostname": domain.hostname, "app": domain.app}


def build_json(build: Build) -> dict[str, Any]:
    """A ``Build`` object."""
    return {
        "id": build.id,
        "app": build.app,
        "status": build.status,
        "source_ref": build.source_ref,
        "slug_id": build.slug_id,
        "created_at": iso(build.created_at),
        "finished_at": iso(build.finished_at),
    }


def token_json(token: Token) -> dict[str, Any]:
    """A token's public part."""
    return {"id": token.id, "name": token.name, "created_at": iso(token.created_at)}
