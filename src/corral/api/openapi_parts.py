"""The building blocks of the OpenAPI document: the common schemas, the helpers that make
schemas, and :class:`Operation` (one method on one path); :mod:`corral.api.openapi` and
:mod:`corral.api.openapi_addons` build on them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["APP_NAME", "INT", "MAYBE_TIME", "NO_NUL", "STR", "TIME", "Operation", "list_of",
           "object_of", "ref"]  # fmt: skip

STR = {"type": "string"}
INT = {"type": "integer"}
TIME = {"type": "string", "format": "date-time"}
MAYBE_TIME = {"type": ["string", "null"], "format": "date-time"}
NO_NUL = "^[^\\x00]*$"  # no process takes a NUL in an argument or the environment

#: What an app name may be (store/names.py): 2 to 30 of a-z, 0-9 and single hyphens.
APP_NAME = {
    "type": "string",
    "minLength": 2,
    "maxLength": 30,
    "pattern": "^[a-z][a-z0-9]*(-[a-z0-9]+)*$",
}


def object_of(**properties: Any) -> dict[str, Any]:
    """An object schema with ``properties``, every one required."""
    return {"type": "object", "properties": properties, "required": list(properties)}


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def list_of(item: dict[str, Any]) -> dict[str, Any]:
    """An array schema of ``item``."""
    return {"type": "array", "items": item}


@dataclass(frozen=True)
class Operation:
    """One method on one path: what it takes and what it answers."""

    method: str
    path: str
    summary: str
    response: dict[str, Any] | str | None = None  # a JSON schema, or a text media type
    status: int = 200
    #: a JSON schema, or the binary media types the body may have
    body: dict[str, Any] | tuple[str, ...] | None = None
    auth: bool = True
    query: tuple[tuple[str, dict[str, Any]], ...] = ()
    body_required: bool = True  # False: an empty body means the defaults
