"""The OpenAPI document: well formed, and in step with the routes the app really has."""

from __future__ import annotations

from pathlib import Path

from corral.api import create_app
from corral.api.objects import app_json, release_json
from corral.api.openapi import OPERATIONS, SCHEMAS, openapi_path
from corral.config import Settings
from corral.store import App, Release

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
