"""Every number a client sends (paths, JSON bodies, query strings, dashboard forms) is
checked before it reaches the store: one past SQLite's 2**63 - 1, or digits ``int()``
cannot read (``²``), answers 404/422/400 with a sentence, never a 500."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from corral.config import Settings
from corral.store import Store
from support.dashboard import WEB, csrf_of

HUGE = 99999999999999999999  # > 2**63 - 1: SQLite overflows on it
HUGER = 999999999999999999999


@pytest.fixture
def api(app: Flask, store: Store, settings: Settings) -> FlaskClient:
    """An API client, and an app ``hello`` with two releases (so rollback reads a version)."""
    store.create_app("hello")
    for slug in ("s1", "s2"):  # on disk, as a build leaves them (a rollback checks)
        (settings.slugs_dir("hello") / slug).mkdir(parents=True)
        store.create_release("hello", slug, settings.slugs_dir("hello") / slug, WEB, "Deploy")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {store.create_token('t')[1]}"
    return client


def _said(response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    message = response.json["message"]
    assert words in message and message.endswith("."), message
    assert "Traceback" not in response.text


@pytest.mark.parametrize("version", [str(HUGE), f"v{HUGE}", str(2**63)])
@pytest.mark.parametrize("suffix", ["", "/output"])
def test_a_huge_release_number_in_the_path_is_404(api: FlaskClient, version, suffix) -> None:
    response = api.get(f"/api/v1/apps/hello/releases/{version}{suffix}")
    _said(response, 404, f"hello has no release v{version.removeprefix('v')}")


@pytest.mark.parametrize("version", ["²", "٣", " 2", "2.0"])
def test_odd_digits_in_the_path_are_404(api: FlaskClient, version: str) -> None:
    _said(api.get(f"/api/v1/apps/hello/releases/{version}"), 404, "is not a release of hello")


@pytest.mark.parametrize("version", [HUGE, str(HUGE), f"v{HUGE}", -1, 0])
def test_rollback_to_a_number_no_release_has_is_404(api: FlaskClient, version) -> None:
    response = api.post("/api/v1/apps/hello/rollback", json={"version": version})
    _said(response, 404, "hello has no release v")


@pytest.mark.parametrize("version", ["²", 1.5, True, "three"])
def test_rollback_to_something_not_a_number_is_400(api: FlaskClient, version) -> None:
    response = api.post("/api/v1/apps/hello/rollback", json={"version": version})
    _said(response, 400, '"version" must be a release number')


def test_rollback_takes_an_integral_json_number(api: FlaskClient) -> None:
    response = api.post("/api/v1/apps/hello/rollback", json={"version": 1.0})
    assert response.status_code == 201 and response.json["description"] == "Rollback to v1"


def test_scaling_to_a_huge_count_is_422(api: FlaskClient) -> None:
    response = api.patch("/api/v1/apps/hello/formation", json={"web": HUGER})
    _said(response, 422, f"Cannot scale web to {HUGER}")
    assert api.patch("/api/v1/apps/hello/formation", json={"web": 2.0}).status_code == 200


def test_an_odd_process_type_name_is_422(api: FlaskClient) -> None:
    response = api.patch("/api/v1/apps/hello/formation", json={"we b": 1})
    _said(response, 422, "'we b' is not a process type name")


@pytest.mark.parametrize("megabytes", [HUGER, 0, -1])
def test_an_impossible_memory_quota_is_422(api: FlaskClient, megabytes: int) -> None:
    response = api.put("/api/v1/apps/hello/memory", json={"megabytes": megabytes})
    _said(response, 422, f"A memory quota of {megabytes} MB is not possible")
    response = api.put("/api/v1/apps/hello/memory", json={"megabytes": 256.0})
    assert response.json["memory_quota_mb"] == 256


@pytest.mark.parametrize("n", [str(HUGE), "²", "٣", "0", "-1"])
def test_a_log_line_count_out_of_range_or_odd_is_400(api: FlaskClient, n: str) -> None:
    _said(api.get(f"/api/v1/apps/hello/logs?n={n}"), 400, "n must be a whole number of lines")


@pytest.mark.parametrize("tail", ["2", "maybe"])
def test_a_tail_that_is_not_a_flag_is_400(api: FlaskClient, tail: str) -> None:
    _said(api.get(f"/api/v1/apps/hello/logs?tail={tail}"), 400, "tail must be 1")


@pytest.mark.parametrize("command", [[""], ["ls", "a\0b"], ["\0"]])
def test_a_command_no_process_could_run_is_400(api: FlaskClient, command) -> None:
    response = api.post("/api/v1/apps/hello/one-offs", json={"command": command})
    _said(response, 400, "Give the command as a non-empty list of strings")


def test_a_one_off_before_any_release_is_409(api: FlaskClient, store: Store) -> None:
    store.create_app("fresh")
    response = api.post("/api/v1/apps/fresh/one-offs", json={"command": ["ls"]})
    _said(response, 409, "fresh has no release yet")


def _dashboard_post(client: FlaskClient, path: str, **form: str) -> str:
    csrf = csrf_of(client.get("/").text)
    response = client.post(path, data={"csrf_token": csrf, **form})
    assert response.status_code == 303, response.text
    return client.get(response.location).text


@pytest.mark.parametrize("version", [str(HUGE), f"v{HUGE}", "²"])
def test_the_dashboard_refuses_a_rollback_to_a_huge_or_odd_version(
    api: FlaskClient, client: FlaskClient, version: str
) -> None:
    page = _dashboard_post(client, "/apps/hello/rollback", version=version)
    assert "alert-danger" in page and "roll back to" in page


@pytest.mark.parametrize("quantity", [str(HUGER), "²"])
def test_the_dashboard_refuses_a_huge_or_odd_count(
    api: FlaskClient, client: FlaskClient, quantity: str
) -> None:
    page = _dashboard_post(client, "/apps/hello/scale", type="web", quantity=quantity)
    assert "alert-danger" in page and "web" in page


def test_the_dashboard_log_stream_ignores_an_odd_backlog(
    app: Flask, api: FlaskClient, client: FlaskClient
) -> None:
    app.config["CORRAL_DASHBOARD_HEARTBEAT"] = 0.05
    response = client.get("/apps/hello/logs/stream?backlog=²", buffered=False)
    assert response.status_code == 200
    assert next(response.response).startswith(b"retry:")
    response.close()
