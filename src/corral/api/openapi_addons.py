"""The add-ons' part of the OpenAPI document: their schemas and operations (creating,
attaching, backups, schedules, the psql and redis-cli WebSockets)."""

from __future__ import annotations

from typing import Any

from corral.addons.naming import SERVICES, VAR_MAX, VAR_PATTERN
from corral.api.openapi_parts import APP_NAME, INT, STR, TIME, Operation, list_of, object_of, ref

__all__ = ["ADDON_OPERATIONS", "ADDON_SCHEMAS"]

APP = "/api/v1/apps/{app}"
ADDON = "/api/v1/addons/{name}"
MAYBE_STR = {"type": ["string", "null"]}
AS = {"type": ["string", "null"], "pattern": f"^{VAR_PATTERN}$", "maxLength": VAR_MAX}
MAYBE_RELEASE = {"oneOf": [ref("Release"), {"type": "null"}]}

ADDON_SCHEMAS: dict[str, dict[str, Any]] = {
    "Addon": object_of(
        name=STR,
        app=STR,
        service=STR,
        plan=STR,
        server=STR,
        created_at=TIME,
        attachments=list_of(object_of(app=STR, **{"as": STR})),
        backups=INT,
        schedule={"oneOf": [object_of(at=STR, keep=INT), {"type": "null"}]},
    ),
    "Backup": object_of(id=STR, size=INT, created_at=TIME),
}
_DETAIL = {
    "allOf": [
        ref("Addon"),
        object_of(version=STR, size=INT, connections=INT),
        # a database's tables, a Redis's keys and maxmemory
        {"type": "object", "properties": {"tables": INT, "keys": INT, "maxmemory": INT}},
    ]
}

ADDON_OPERATIONS: tuple[Operation, ...] = (
    Operation("get", f"{APP}/addons", "List the add-ons attached to an app",
              list_of(ref("Addon"))),
    Operation("post", f"{APP}/addons", "Create an add-on and attach it (a new release)",
              object_of(addon={"allOf": [ref("Addon"), object_of(**{"as": STR})]},
                      release=MAYBE_RELEASE), 201,
              {"type": "object", "required": ["service"], "properties": {
                  "service": {"enum": sorted(SERVICES)}, "as": AS,
                  "plan": {"type": ["string", "null"]}, "server": {"type": ["string", "null"]}}}),
    Operation("get", f"{APP}/psql",
              "psql on the app's database, attached: a WebSocket like .../run, its command "
              "[\"psql\", ...], \"as\" the attachment (default DATABASE_URL)", None, 101),
    Operation("get", f"{APP}/redis-cli",
              "redis-cli on the app's Redis, attached: a WebSocket like .../psql", None, 101),
    Operation("get", ADDON, "Show an add-on: attachments, version, size, connections",
              _DETAIL),
    Operation("delete", ADDON, "Destroy an add-on after a last backup (confirm=its app)",
              object_of(name=STR, final_backup={"type": ["string", "null"]}, kept_days=INT),
              query=(("confirm", STR),)),
    Operation("post", f"{ADDON}/attachments", "Attach an add-on to another app",
              object_of(app=STR, release=MAYBE_RELEASE, **{"as": STR}),
              body={"type": "object", "required": ["app"],
                    "properties": {"app": APP_NAME, "as": AS}}),
    Operation("delete", f"{ADDON}/attachments/{{app}}", "Detach an add-on from an app",
              object_of(release=MAYBE_RELEASE)),
    Operation("post", f"{ADDON}/credentials",
              "New login, a release per app attached; the old one revoked once they rolled",
              object_of(releases=list_of(MAYBE_RELEASE), revoked={"type": "boolean"},
                      kept_because=list_of(STR))),
    Operation("get", f"{ADDON}/backups", "List an add-on's backups", list_of(ref("Backup"))),
    Operation("post", f"{ADDON}/backups", "Back an add-on up now (pg_dump)", ref("Backup"),
              201),
    Operation("get", f"{ADDON}/backups/{{backup}}", "Download a backup",
              "application/octet-stream"),
    Operation("put", f"{ADDON}/schedule", "Back up daily at HH:MM (UTC), keeping the last N",
              object_of(at=STR, keep=INT),
              body={"type": "object", "required": ["at"], "properties": {
                  "at": {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"},
                  "keep": {"type": "integer", "minimum": 1, "maximum": 1000}}}),
    Operation("delete", f"{ADDON}/schedule", "Stop the scheduled backups", None, 204),
    Operation("post", f"{ADDON}/restore", "Restore a backup (default: the newest)",
              ref("Backup"), body={"type": "object", "properties": {"backup": MAYBE_STR}},
              body_required=False),
)  # fmt: skip
