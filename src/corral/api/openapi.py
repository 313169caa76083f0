"""The OpenAPI 3.1 document of the API, built from a declarative table of its operations.

A test checks the table against the app's URL map, so the document cannot drift from the
routes, and the schemas of names, counts and bodies say exactly what the server accepts
(tests/test_api_openapi.py holds them to the validators; tests/test_api_fuzz.py runs
schemathesis against a real server). The git endpoint is not part of the JSON API.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from corral import __version__
from corral.api.openapi_addons import ADDON_OPERATIONS, ADDON_SCHEMAS
from corral.api.openapi_parts import (
    APP_NAME,
    INT,
    MAYBE_TIME,
    NO_NUL,
    STR,
    TIME,
    Operation,
    list_of,
    object_of,
    ref,
)
from corral.logfiles import MAX_LOG_LINES
from corral.store.formation import MAX_QUANTITY, PHASES
from corral.store.names import RESERVED_APP_NAMES, RESERVED_CONFIG_KEYS

__all__ = [
    "APP_NAME",
    "CONFIG_KEY",
    "HOSTNAME",
    "NEW_APP_NAME",
    "OPERATIONS",
    "Operation",
    "document",
    "openapi_blueprint",
    "openapi_path",
]

openapi_blueprint = Blueprint("openapi", __name__)

_STR, _INT, _TIME, _MAYBE_TIME, _NO_NUL = STR, INT, TIME, MAYBE_TIME, NO_NUL
#: A name a new (or renamed) app may take: not one the platform keeps for itself.
NEW_APP_NAME = {**APP_NAME, "not": {"enum": sorted(RESERVED_APP_NAMES)}}
_LABEL = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#: A custom domain (store/names.py): two labels or more, the last not all digits; any case,
#: a trailing dot allowed (the server stores it lowercase, without the dot).
HOSTNAME = {
    "type": "string",
    "maxLength": 253,
    "pattern": f"^({_LABEL}\\.)+(?![0-9]+\\.?$){_LABEL}\\.?$",
}
#: A config var's name: an environment variable name, not one corral sets itself.
CONFIG_KEY = {
    "type": "string",
    "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
    "not": {"enum": sorted(RESERVED_CONFIG_KEYS)},
}
_PROCESS_TYPE = {"type": "string", "pattern": "^[A-Za-z0-9_-]+$", "not": {"enum": sorted(PHASES)}}
_VERSION = {"type": "string", "pattern": "^v?[0-9]+$"}
_COMMAND = {
    "type": "array",
    "minItems": 1,
    "items": {"type": "string", "pattern": _NO_NUL},
    "prefixItems": [{"type": "string", "minLength": 1, "pattern": _NO_NUL}],
}
_TARGET = {"type": ["string", "null"]}
_PATH_PARAMETERS: dict[str, dict[str, Any]] = {"app": APP_NAME, "version": _VERSION}


_object, _ref, _list = object_of, ref, list_of


SCHEMAS: dict[str, dict[str, Any]] = {
    **ADDON_SCHEMAS,
    "Error": _object(id=_STR, message=_STR),
    "Token": _object(id=_STR, name=_STR, created_at=_TIME),
    "App": _object(
        name=_STR,
        created_at=_TIME,
        maintenance={"type": "boolean"},
        web_url=_STR,
        current_release={"type": ["integer", "null"]},
        memory_quota_mb={"type": ["integer", "null"]},
        default_memory_quota_mb=_INT,
    ),
    "Release": _object(
        app=_STR,
        version=_INT,
        name=_STR,
        description=_STR,
        status={"enum": ["pending", "succeeded", "failed"]},
        slug_id=_STR,
        process_types={"type": "object", "additionalProperties": _STR},
        config_keys=_list(_STR),
        created_at=_TIME,
        failure_reason={"type": ["string", "null"]},
        failure_excerpt=_list(_STR),
    ),
    "Formation": _object(type=_STR, quantity=_INT, command=_STR),
    "Certificate": _object(
        hostname=_STR,
        app=_STR,
        source={"enum": ["acme", "user"]},
        state={"enum": ["pending", "issued", "failed"]},
        reason={"type": ["string", "null"]},
        issuer={"type": ["string", "null"]},
        expires_at=_MAYBE_TIME,
        next_attempt_at=_MAYBE_TIME,
    ),
    "Dyno": _object(
        app=_STR,
        name=_STR,
        type=_STR,
        release=_STR,
        state={"enum": ["starting", "up", "crashed", "stopping"]},
        since=_TIME,
        port={"type": ["integer", "null"]},
        pid={"type": ["integer", "null"]},
        restarts=_INT,
        next_restart_at=_MAYBE_TIME,
        rss_bytes={"type": ["integer", "null"]},
        cpu_percent={"type": ["number", "null"]},
    ),
    "Domain": _object(hostname=_STR, app=_STR),
    "Build": _object(
        id=_STR,
        app=_STR,
        status={"enum": ["pending", "running", "succeeded", "failed"]},
        source_ref=_STR,
        slug_id={"type": ["string", "null"]},
        created_at=_TIME,
        finished_at=_MAYBE_TIME,
    ),
}

_CONFIG = {"type": "object", "additionalProperties": _STR}
_APP_DETAIL = {
    "allOf": [
        _ref("App"),
        _object(
            release={"oneOf": [_ref("Release"), {"type": "null"}]},
            formation=_list(_ref("Formation")),
            dynos=_list(_ref("Dyno")),
            domains=_list(_ref("Domain")),
            # bytes on disk: slugs, git repository, logs and their total
            disk_use=_object(slugs=_INT, repo=_INT, logs=_INT, total=_INT),
        ),
    ]
}


_APP = "/api/v1/apps/{app}"
OPERATIONS: tuple[Operation, ...] = (
    Operation("get", "/api/v1/health", "Server status", _object(status=_STR, version=_STR),
              auth=False),
    Operation("get", "/api/v1/openapi.json", "This document", {"type": "object"}, auth=False),
    Operation("get", "/api/v1/whoami", "The token in use", _object(token=_ref("Token"))),
    Operation("get", "/api/v1/apps", "List apps", _list(_ref("App"))),
    Operation("post", "/api/v1/apps", "Create an app (random name without one)", _ref("App"),
              201, {"type": "object", "properties": {"name": {**NEW_APP_NAME,
                                                              "type": ["string", "null"]}}},
              body_required=False),
    Operation("get", _APP, "Show an app", _APP_DETAIL),
    Operation("patch", _APP, "Rename an app (its dynos keep serving)", _ref("App"),
              body=_object(name=NEW_APP_NAME)),
    Operation("delete", _APP, "Delete an app, its dynos and files", None, 204),
    Operation("put", f"{_APP}/maintenance", "Turn maintenance mode on or off", _ref("App"),
              body=_object(enabled={"type": "boolean"})),
    Operation("put", f"{_APP}/memory", "Set the memory quota per dyno (null: default)",
              _ref("App"), body=_object(megabytes={"type": ["integer", "null"], "minimum": 16,
                                                   "maximum": 65536})),
    Operation("get", f"{_APP}/config", "Config vars", _CONFIG),
    Operation("patch", f"{_APP}/config", "Set config vars (null unsets)",
              _object(config=_CONFIG, release={"oneOf": [_ref("Release"), {"type": "null"}]}),
              body={"type": "object", "propertyNames": CONFIG_KEY,
                    "additionalProperties": {"type": ["string", "null"], "pattern": _NO_NUL}},
              body_required=False),
    Operation("get", f"{_APP}/releases", "List releases, newest first", _list(_ref("Release"))),
    Operation("get", f"{_APP}/releases/{{version}}", "Show a release and its pip freeze",
              {"allOf": [_ref("Release"), _object(freeze=_list(_STR))]}),
    Operation("get", f"{_APP}/releases/{{version}}/output", "What its release phase printed",
              "text/plain"),
    Operation("post", f"{_APP}/rollback", "Roll back (default: to the previous release)",
              _ref("Release"), 201,
              {"type": "object", "properties": {"version": {
                  "type": ["integer", "string", "null"], "pattern": "^v?-?[0-9]+$"}}},
              body_required=False),
    Operation("get", f"{_APP}/formation", "The formation", _list(_ref("Formation"))),
    Operation("patch", f"{_APP}/formation", "Scale process types", _list(_ref("Formation")),
              body={"type": "object", "minProperties": 1, "propertyNames": _PROCESS_TYPE,
                    "additionalProperties": {"type": "integer", "minimum": 0,
                                             "maximum": MAX_QUANTITY}}),
    Operation("get", f"{_APP}/dynos", "List dynos", _list(_ref("Dyno"))),
    Operation("get", "/api/v1/platform/dynos", "List the platform's own services (API, router)",
              _list(_ref("Dyno"))),
    Operation("post", f"{_APP}/dynos/restart", "Restart dynos (all, a type or one)",
              {"type": "object"}, 202, {"type": "object", "properties": {"target": _TARGET}},
              body_required=False),
    Operation("post", f"{_APP}/dynos/stop", "Stop dynos (the formation restarts them)",
              {"type": "object"}, 202, {"type": "object", "properties": {"target": _TARGET}},
              body_required=False),
    Operation("get", f"{_APP}/domains", "List custom domains", _list(_ref("Domain"))),
    Operation("post", f"{_APP}/domains", "Add a custom domain", _ref("Domain"), 201,
              _object(hostname=HOSTNAME)),
    Operation("delete", f"{_APP}/domains/{{hostname}}", "Remove a custom domain", None, 204),
    Operation("get", f"{_APP}/certs", "Certificates of the app's hosts (HTTPS)",
              _list(_ref("Certificate"))),
    Operation("post", f"{_APP}/certs", "Install a certificate and key brought by the user",
              _list(_ref("Certificate")), 201,
              _object(certificate={"type": "string", "minLength": 1},
                      key={"type": "string", "minLength": 1})),
    Operation("delete", f"{_APP}/certs/{{hostname}}",
              "Forget a host's certificate (ACME obtains a new one)", None, 204),
    Operation("post", f"{_APP}/cert-refresh", "Obtain the app's certificates again now",
              _object(hostnames=_list(_STR)), 202,
              {"type": "object",
               "properties": {"hostname": {**HOSTNAME, "type": ["string", "null"]}}},
              body_required=False),
    Operation("put", f"{_APP}/hsts", "Send Strict-Transport-Security on HTTPS, or stop",
              _object(app=_STR, hsts={"type": "boolean"}),
              body=_object(enabled={"type": "boolean"})),
    Operation("get", f"{_APP}/logs", "Recent log lines; tail=1 streams new ones", "text/plain",
              query=(("n", {**_INT, "minimum": 1, "maximum": MAX_LOG_LINES}), ("source", _STR),
                     ("dyno", _STR), ("tail", {"enum": ["0", "1", "true", "false", "yes", "no"]}))),
    Operation("get", f"{_APP}/freeze", "pip freeze of the current release", "text/plain"),
    Operation("get", f"{_APP}/builds", "List builds, newest first", _list(_ref("Build"))),
    Operation("post", f"{_APP}/builds", "Deploy a gzipped source tarball (streams output)",
              # octet-stream too: the server reads any body as the tarball, and a client
              # that knows no gzip (schemathesis) can still send one
              "text/plain", body=("application/gzip", "application/octet-stream")),
    Operation("post", f"{_APP}/run", "Run a one-off command (streams output)", "text/plain",
              body=_object(command=_COMMAND)),
    Operation("get", f"{_APP}/run",
              "Run a one-off attached: a WebSocket (Upgrade: websocket) with the command in the "
              "Corral-Run header as JSON ({command, tty, rows, cols, term}); see corral/wire.py",
              None, 101),
    Operation("get", f"{_APP}/one-offs", "List running one-off dynos", _list(_ref("Dyno"))),
    Operation("post", f"{_APP}/one-offs", "Start a detached one-off (output to the logs)",
              _ref("Dyno"), 201, _object(command=_COMMAND)),
    Operation("delete", f"{_APP}/one-offs/{{name}}",
              "Stop a one-off dyno (SIGTERM, then SIGKILL)", _ref("Dyno"), 202),
    *ADDON_OPERATIONS,
)  # fmt: skip

_ERRORS = {
    "400": "Malformed request",
    "401": "Missing or wrong token",
    "404": "No such app, release or domain",
    "409": "Conflicts with the current state",
    "422": "Invalid value",
    "503": "The server cannot do this now (a part it needs is busy or not running)",
}


def openapi_path(rule: str) -> str:
    """A Flask rule (``/apps/<app>``, ``<int:n>``) as an OpenAPI path (``/apps/{app}``)."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _content(spec: dict[str, Any] | str) -> dict[str, Any]:
    if isinstance(spec, str):
        return {spec: {"schema": _STR}}
    return {"application/json": {"schema": spec}}


def _body(spec: dict[str, Any] | tuple[str, ...]) -> dict[str, Any]:
    if isinstance(spec, tuple):
        binary = {"type": "string", "format": "binary", "minLength": 1}
        return {media: {"schema": binary} for media in spec}
    return _content(spec)


def _operation(op: Operation) -> dict[str, Any]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": _PATH_PARAMETERS.get(name, _STR)}
        for name in re.findall(r"{([^}]+)}", op.path)
    ]
    params += [{"name": name, "in": "query", "schema": schema} for name, schema in op.query]
    answer: dict[str, Any] = {"description": op.summary}
    if op.response is not None:
        answer["content"] = _content(op.response)
    responses: dict[str, Any] = {str(op.status): answer}
    if op.auth:
        error = {"content": _content(_ref("Error"))}
        responses |= {code: {"description": text, **error} for code, text in _ERRORS.items()}
    spec: dict[str, Any] = {"summary": op.summary, "responses": responses}
    if params:
        spec["parameters"] = params
    if op.body is not None:
        spec["requestBody"] = {"required": op.body_required, "content": _body(op.body)}
    if not op.auth:
        spec["security"] = []
    return spec


def document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "corral API", "version": __version__},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"token": []}],
    }


@openapi_blueprint.get("/openapi.json")
def openapi_json() -> ResponseReturnValue:
    """The OpenAPI document."""
    return jsonify(document())
