"""The OpenAPI document: well formed, in step with the routes the app really has, and its
names and bounds those the server checks (tests/test_api_fuzz.py tries it on a real one)."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from corral.api import create_app
from corral.api.objects import PROCESS_TYPE, app_json, release_json
from corral.api.openapi import (
    CONFIG_KEY,
    HOSTNAME,
    NEW_APP_NAME,
    OPERATIONS,
    SCHEMAS,
    document,
    openapi_path,
)
from corral.config import Settings
from corral.store import App, Invalid, Release
from corral.store.formation import MAX_QUANTITY
from corral.store.names import validate_app_name, validate_config_key, validate_hostname

_IGNORED_METHODS = {"HEAD", "OPTIONS"}


def _routes(tmp_path: Path) -> set[tuple[str, str]]:
    app = create_app(Settings.load(tmp_path))
    return {
        (openapi_path(rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/")
        for method in rule.methods or ()
        if method not in _IGNORED_METHODS
    }


def test_openapi_path_converts_flask_rules() -> None:
    assert openapi_path("/api/v1/apps/<app>/releases/<int:version>") == (
        "/api/v1/apps/{app}/releases/{version}"
    )


def test_document_is_served_without_a_token_and_looks_like_openapi(tmp_path: Path) -> None:
    document = create_app(Settings.load(tmp_path)).test_client().get("/api/v1/openapi.json").json
    assert document["openapi"].startswith("3.1")
    assert document["info"]["version"] == "0.1.0"
    assert "/api/v1/apps/{app}/config" in document["paths"]
    schemas = document["components"]["schemas"]
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            assert operation["summary"], (path, method)
            for answer in operation["responses"].values():
                for media in answer.get("content", {}).values():
                    ref = media["schema"].get("$ref")
                    assert ref is None or ref.rsplit("/", 1)[1] in schemas


def test_every_route_is_documented_and_every_documented_route_exists(tmp_path: Path) -> None:
    documented = {(op.path, op.method) for op in OPERATIONS}
    routes = _routes(tmp_path)
    assert routes - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routes == set(), "documented operations without a route"


def test_app_and_release_objects_have_the_documented_fields(tmp_path: Path) -> None:
    release = Release("hello", 1, "s1", tmp_path, "Deploy", failure_reason="web.1 exited")
    assert list(release_json(release)) == list(SCHEMAS["Release"]["properties"])
    app = app_json(App("hello", 0.0), Settings.load(tmp_path))
    assert list(app) == list(SCHEMAS["App"]["properties"])


def test_path_parameters_are_declared(tmp_path: Path) -> None:
    document = create_app(Settings.load(tmp_path)).test_client().get("/api/v1/openapi.json").json
    operation = document["paths"]["/api/v1/apps/{app}/domains/{hostname}"]["delete"]
    assert {p["name"] for p in operation["parameters"]} == {"app", "hostname"}


# --- the document's names say what the validators accept ----------------------------------

_WORDS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.é \n"


def _matches(schema: dict, text: str) -> bool:
    """Whether ``text`` passes ``schema``'s pattern, lengths and ``not enum`` as JSON Schema
    reads them (ECMA 262: ``$`` is the very end, not before a final newline)."""
    pattern = re.sub(r"(?<!\\)\$", r"\\Z", schema["pattern"])
    return (
        re.search(pattern, text) is not None
        and schema.get("minLength", 0) <= len(text) <= schema.get("maxLength", len(text))
        and text not in schema.get("not", {}).get("enum", ())
    )


def _accepted(validate, text: str) -> bool:
    try:
        validate(text)
    except Invalid:
        return False
    return True


_NAMES = st.text(st.sampled_from(_WORDS), max_size=34)


@given(st.one_of(_NAMES, st.from_regex(NEW_APP_NAME["pattern"]), st.sampled_from(["api", "a"])))
def test_the_app_name_schema_is_the_app_name_rule(name: str) -> None:
    assert _matches(NEW_APP_NAME, name) == _accepted(validate_app_name, name)


@given(st.one_of(_NAMES, st.from_regex(CONFIG_KEY["pattern"]), st.just("PORT")))
def test_the_config_key_schema_is_the_config_key_rule(key: str) -> None:
    assert _matches(CONFIG_KEY, key) == _accepted(validate_config_key, key)


@given(st.one_of(_NAMES, st.from_regex(HOSTNAME["pattern"]).filter(lambda h: len(h) < 200)))
def test_the_hostname_schema_is_the_hostname_rule(host: str) -> None:
    if host != host.strip():
        return  # the server forgives surrounding blanks; the document asks for none
    assert _matches(HOSTNAME, host) == _accepted(validate_hostname, host)


def test_the_document_bounds_are_the_servers() -> None:
    paths = document()["paths"]
    memory = paths["/api/v1/apps/{app}/memory"]["put"]["requestBody"]["content"]
    megabytes = memory["application/json"]["schema"]["properties"]["megabytes"]
    assert (megabytes["minimum"], megabytes["maximum"]) == (16, 65536)
    scale = paths["/api/v1/apps/{app}/formation"]["patch"]["requestBody"]["content"]
    body = scale["application/json"]["schema"]
    assert body["minProperties"] == 1
    assert body["additionalProperties"]["maximum"] == MAX_QUANTITY
    assert body["propertyNames"]["pattern"].strip("^$") == PROCESS_TYPE.pattern
    assert paths["/api/v1/apps"]["post"]["requestBody"]["required"] is False
    build = paths["/api/v1/apps/{app}/builds"]["post"]["requestBody"]
    assert build["required"] is True
    assert build["content"]["application/gzip"]["schema"]["format"] == "binary"
