"""The JSON API through the Flask test client on a real store, plus one round trip through
a real gunicorn: apps, auth, errors, config and releases, formation, domains, logs."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil
import pytest
from flask import Flask, request
from flask.testing import FlaskClient

from corral.api.auth import check_basic_auth
from corral.builder.slug import Slug, write_metadata
from corral.builder.source import make_read_only
from corral.config import Settings
from corral.errors import UserError
from corral.logfiles import LogLine, append_line
from corral.store import Dyno, Store
from support.processes import free_port
from support.wait import wait_for_http, wait_until

WEB = {"web": "gunicorn app:app", "worker": "python worker.py"}


# `settings` and `store` come from tests/conftest.py


@pytest.fixture
def app(app: Flask) -> Flask:
    """conftest's app, waiting less for a deleted app's dynos."""
    app.config["CORRAL_DELETE_WAIT"] = 5.0
    return app


@pytest.fixture
def client(app: Flask, store: Store) -> FlaskClient:
    _, secret = store.create_token("test")
    test_client = app.test_client()
    test_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return test_client


def make_slug(settings: Settings, app: str, slug_id: str, freeze: list[str]) -> Path:
    path = settings.slugs_dir(app) / slug_id
    slug = Slug(slug_id, app, path, path / "env", "hash", "3.12", "uv", WEB, freeze=freeze)
    write_metadata(slug)
    make_read_only(path)
    return path


def deploy(store: Store, settings: Settings, app: str = "hello") -> None:
    path = make_slug(settings, app, "s1", ["flask==3.1.3", "gunicorn==23.0.0"])
    store.create_release(app, "s1", path, WEB, "Deploy s1")


def now_stamp() -> str:
    return datetime.now(UTC).isoformat()


# --- health and auth -----------------------------------------------------------------


def test_health_and_openapi_need_no_token(app: Flask) -> None:
    plain = app.test_client()
    assert plain.get("/api/v1/health").json == {"status": "ok", "version": "0.1.0"}
    assert plain.get("/api/v1/openapi.json").status_code == 200


@pytest.mark.parametrize("header", [None, "Bearer corral_nope_nope", "Basic dXNlcjpwdw=="])
def test_missing_or_wrong_token_is_401_with_www_authenticate(app: Flask, header) -> None:
    headers = {"Authorization": header} if header else {}
    response = app.test_client().get("/api/v1/apps", headers=headers)
    assert response.status_code == 401
    assert response.json["id"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_whoami_names_the_token(client: FlaskClient) -> None:
    assert client.get("/api/v1/whoami").json["token"]["name"] == "test"


def test_basic_auth_takes_the_token_as_password(app: Flask, store: Store) -> None:
    _, secret = store.create_token("git")
    good = base64.b64encode(f"anyone:{secret}".encode()).decode()
    bad = base64.b64encode(b"anyone:corral_x_y").decode()
    for value, expected in [(f"Basic {good}", True), (f"Basic {bad}", False), ("Basic !!", False)]:
        with app.test_request_context("/git/x.git/info/refs", headers={"Authorization": value}):
            assert check_basic_auth(request) is expected


# --- apps ----------------------------------------------------------------------------


def test_apps_create_list_show_delete(client: FlaskClient) -> None:
    created = client.post("/api/v1/apps", json={"name": "hello"})
    assert created.status_code == 201
    assert created.json["web_url"] == "http://hello.corral.test:9090/"
    assert created.json["current_release"] is None
    assert created.json["created_at"].endswith("+00:00")
    assert [a["name"] for a in client.get("/api/v1/apps").json] == ["hello"]
    shown = client.get("/api/v1/apps/hello").json
    assert shown["release"] is None
    assert (shown["formation"], shown["dynos"], shown["domains"]) == ([], [], [])
    assert client.delete("/api/v1/apps/hello").status_code == 204
    assert client.get("/api/v1/apps/hello").status_code == 404


def test_app_without_a_name_gets_a_random_one(client: FlaskClient) -> None:
    response = client.post("/api/v1/apps", json={})
    assert response.status_code == 201
    assert response.json["name"].count("-") == 2
    assert client.post("/api/v1/apps").status_code == 201  # no body at all


@pytest.mark.parametrize("name", ["../x", "UPPER", "a" * 40, ""])
def test_invalid_app_names_are_422_with_a_message(client: FlaskClient, name: str) -> None:
    response = client.post("/api/v1/apps", json={"name": name})
    assert response.status_code == 422
    assert response.json["id"] == "invalid"
    assert "app name" in response.json["message"]


def test_taken_name_is_409_and_unknown_app_404(client: FlaskClient) -> None:
    client.post("/api/v1/apps", json={"name": "hello"})
    taken = client.post("/api/v1/apps", json={"name": "hello"})
    assert (taken.status_code, taken.json["id"]) == (409, "conflict")
    missing = client.get("/api/v1/apps/nope")
    assert (missing.status_code, missing.json["id"]) == (404, "not_found")
    assert "corral apps" in missing.json["message"]


def test_maintenance_mode_toggles(client: FlaskClient) -> None:
    client.post("/api/v1/apps", json={"name": "hello"})
    url = "/api/v1/apps/hello/maintenance"
    assert client.put(url, json={"enabled": True}).json["maintenance"] is True
    assert client.put(url, json={"enabled": False}).json["maintenance"] is False
    assert client.put(url, json={"enabled": "yes"}).status_code == 400


def test_delete_waits_for_the_dynos_then_removes_files(
    client: FlaskClient, store: Store, settings: Settings
) -> None:
    client.post("/api/v1/apps", json={"name": "hello"})
    deploy(store, settings)
    append_line(settings.logs_dir("hello"), "web.1", LogLine(now_stamp(), "app", "web.1", "hi"))
    store.upsert_dyno(Dyno("hello", "web.1", "web", 1, None, None, None, "stopping"))
    stopped: list[bool] = []

    def dyno_manager() -> None:  # stops the dyno only once the app is gone from the store
        with Store.for_settings(settings) as own:
            wait_until(lambda: "hello" not in [a.name for a in own.list_apps()], 10)
            stopped.append(own.delete_dyno("hello", "web.1"))

    manager = threading.Thread(target=dyno_manager)
    manager.start()
    assert client.delete("/api/v1/apps/hello").status_code == 204
    manager.join()
    assert stopped == [True]
    assert not (settings.apps_dir / "hello").exists()
    assert not settings.logs_dir("hello").exists()


def test_delete_during_a_deploy_is_409_naming_the_release(
    client: FlaskClient, store: Store, settings: Settings
) -> None:
    client.post("/api/v1/apps", json={"name": "hello"})
    store.create_release("hello", "s1", "/slugs/s1", WEB, "Deploy", status="pending")
    response = client.delete("/api/v1/apps/hello")
    assert response.status_code == 409
    assert "v1" in response.json["message"]


# --- errors --------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"'])
def test_malformed_or_non_object_json_is_400(client: FlaskClient, body: bytes) -> None:
    response = client.post("/api/v1/apps", data=body, content_type="application/json")
    assert (response.status_code, response.json["id"]) == (400, "bad_request")


def test_unknown_route_and_method_answer_json(client: FlaskClient) -> None:
    missing = client.get("/api/v1/nothing-here")
    assert (missing.status_code, missing.json["id"]) == (404, "not_found")
    wrong = client.put("/api/v1/apps")
    assert (wrong.status_code, wrong.json["id"]) == (405, "method_not_allowed")
    assert set(wrong.headers["Allow"].split(", ")) >= {"GET", "POST"}


def test_oversize_body_is_413(app: Flask, client: FlaskClient) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 100
    response = client.post("/api/v1/apps", json={"name": "x" * 200})
    assert (response.status_code, response.json["id"]) == (413, "payload_too_large")


def test_a_bug_is_500_without_the_traceback(app: Flask, client: FlaskClient, caplog) -> None:
    def broken() -> None:
        raise RuntimeError("secret internals")

    app.add_url_rule("/api/v1/broken", "broken", broken)
    response = client.get("/api/v1/broken")
    assert response.status_code == 500
    assert "secret internals" not in response.get_data(as_text=True)
    assert "secret internals" in caplog.text


# --- config and releases -------------------------------------------------------------


def test_config_before_a_release_waits_for_the_first_deploy(client: FlaskClient) -> None:
    client.post("/api/v1/apps", json={"name": "hello"})
    response = client.patch("/api/v1/apps/hello/config", json={"SECRET": "s3cr3t"})
    assert response.json == {"config": {"SECRET": "s3cr3t"}, "release": None}
    assert client.get("/api/v1/apps/hello/releases").json == []


def test_config_changes_make_releases_without_exposing_values(
    client: FlaskClient, store: Store, settings: Settings
) -> None:
    client.post("/api/v1/apps", json={"name": "hello"})
    deploy(store, settings)
    changed = client.patch("/api/v1/apps/hello/config", json={"SECRET": "hunter2-value", "A": "1"})
    assert changed.json["config"] == {"A": "1", "SECRET": "hunter2-value"}
    assert (changed.json["release"]["name"], changed.json["release"]["status"]) == ("v2", "pending")
    assert changed.json["release"]["config_keys"] == ["A", "SECRET"]
    # the current config until the supervisor has started the release's dynos
    assert client.get("/api/v1/apps/hello/config").json == {}
    store.mark_release_succeeded("hello", 2)
    unset = client.patch("/api/v1/apps/hello/config", json={"A": None}).json
    assert (unset["config"], unset["release"]["version"]) == ({"SECRET": "hunter2-value"}, 3)
    store.mark_release_succeeded("hello", 3)
    assert client.get("/api/v1/apps/hello/config").json == {"SECRET": "hunter2-value"}
    releases = client.get("/api/v1/apps/hello/releases")
    assert [r["version"] for r in releases.json] == [3, 2, 1]
    for url in ("/api/v1/apps/hello/releases", "/api/v1/apps/hello/releases/v2"):
        assert "hunter2-value" not in client.get(url).get_data(as_text=True)
    assert client.get("/api/v1/apps/hello").json["release"]["name"] == "v3"


def test_a_failed_release_says_why(client: FlaskClient, store: Store, settings: Settings) -> None:
    client.post("/api/v1/apps", json={"name": "hello"})
    deploy(store, settings)
    assert client.get("/api/v1/apps/hello/releases/1").json["failure_reason"] is None
    pending = store.create_release("hello", "s2", "/slugs/s2", WEB, "Deploy s2", status="pending")
    store.mark_release_failed("hello", pending.version, reason="web.1 exited", excerpt=["web.1: x"])
    [failed, _] = client.get("/api/v1/apps/hello/releases").json
    assert (failed["status"], failed["failure_reason"]) == ("failed", "web.1 exited")
    assert failed["failure_excerpt"] == ["web.1: x"]


@pytest.mark.parametrize("key", ["1BAD", "WITH-DASH", "PORT"])
def test_invalid_config_key_is_422(client: FlaskClient, key: str) -> None:
    client.post("/api/v1/apps", json={"name": "hello"})
    response = client.patch("/api/v1/apps/hello/config", json={key: "x"})
    assert (response.status_code, response.json["id"]) == (422, "invalid")


def test_release_shows_its_freeze_and_the_freeze_endpoint(
    client: FlaskClient, store: Store, settings: Settings
) -> None:
    client.post("/api/v1/apps", json={"name": "hello"})
    assert client.get("/api/v1/apps/hello/freeze").status_code == 404
    deploy(store, settings)
    release = client.get("/api/v1/apps/hello/releases/1").json
    assert release["freeze"] == ["flask==3.1.3", "gunicorn==23.0.0"]
    assert release["process_types"] == WEB
    freeze = client.get("/api/v1/apps/hello/freeze")
    assert freeze.mimetype == "text/plain"
    assert freeze.get_data(as_text=True) == "flask==3.1.3\ngunicorn==23.0.0\n"
    assert client.get("/api/v1/apps/hello/releases/9").status_code == 404
    assert client.get("/api/v1/apps/hello/releases/latest").status_code == 404


def test_rollback_to_previous_or_named_version(
    client: FlaskClient, store: Store, settings: Settings
) -> None:
    client.post("/api/v1/apps", json={"name": "hello"})
    assert client.post("/api/v1/apps/hello/rollback", json={}).status_code == 409
    deploy(store, settings)
    client.patch("/api/v1/apps/hello/config", json={"A": "1"})
    store.mark_release_succeeded("hello", 2)  # as the supervisor does once its dynos are up
    back = client.post("/api/v1/apps/hello/rollback", json={})
    assert (back.status_code, back.json["name"], back.json["config_keys"]) == (201, "v3", [])
    assert back.json["status"] == "pending"
    refused = client.post("/api/v1/apps/hello/rollback", json={"version": 2})
    assert (refused.status_code, refused.json["id"]) == (409, "conflict")
    assert "v3 of hello is still rolling out" in refused.json["message"]
    store.mark_release_succeeded("hello", 3)
    again = client.post("/api/v1/apps/hello/rollback", json={"version": 2})
    assert (again.json["description"], again.json["config_keys"]) == ("Rollback to v2", ["A"])
    store.mark_release_succeeded("hello", 4)
    assert client.post("/api/v1/apps/hello/rollback", json={"version": "x"}).status_code == 400
    assert client.post("/api/v1/apps/hello/rollback", json={"version": 99}).status_code == 404


# --- formation, dynos, domains -------------------------------------------------------


def test_scaling_the_formation(client: FlaskClient, store: Store, settings: Settings) -> None:
    client.post("/api/v1/apps", json={"name": "hello"})
    assert client.patch("/api/v1/apps/hello/formation", json={"web": 2}).status_code == 409
    deploy(store, settings)
    assert client.get("/api/v1/apps/hello/formation").json == [
        {"type": "web", "quantity": 1, "command": "gunicorn app:app"},
        {"type": "worker", "quantity": 0, "command": "python worker.py"},
    ]
    scaled = client.patch("/api/v1/apps/hello/formation", json={"web": 3, "worker": 1})
    assert [(f["type"], f["quantity"]) for f in scaled.json] == [("web", 3), ("worker", 1)]
    for body in ({"clock": 1}, {"web": -1}, {"web": "2"}, {"web": 101}):
        response = client.patch("/api/v1/apps/hello/formation", json=body)
        assert (response.status_code, response.json["id"]) == (422, "invalid"), body
    assert client.patch("/api/v1/apps/hello/formation", json={}).status_code == 400


def test_dynos_report_memory_and_cpu_while_running(client: FlaskClient, store: Store) -> None:
    client.post("/api/v1/apps", json={"name": "hello"})
    me = psutil.Process()
    store.upsert_dyno(
        Dyno("hello", "web.1", "web", 1, me.pid, me.create_time(), 5000, "up", since=time.time())
    )
    store.upsert_dyno(Dyno("hello", "worker.1", "worker", 1, None, None, None, "crashed"))
    running, crashed = client.get("/api/v1/apps/hello/dynos").json
    assert (running["name"], running["type"], running["release"]) == ("web.1", "web", "v1")
    assert running["rss_bytes"] > 0 and running["cpu_percent"] >= 0
    assert (crashed["rss_bytes"], crashed["cpu_percent"]) == (None, None)
    assert client.get("/api/v1/apps/nope/dynos").status_code == 404


def test_domains_add_list_remove(client: FlaskClient) -> None:
    client.post("/api/v1/apps", json={"name": "hello"})
    client.post("/api/v1/apps", json={"name": "other"})
    added = client.post("/api/v1/apps/hello/domains", json={"hostname": "WWW.Example.com"})
    assert (added.status_code, added.json) == (201, {"hostname": "www.example.com", "app": "hello"})
    taken = client.post("/api/v1/apps/other/domains", json={"hostname": "www.example.com"})
    assert taken.status_code == 409 and "hello" in taken.json["message"]
    assert client.post("/api/v1/apps/hello/domains", json={"hostname": "nodot"}).status_code == 422
    assert client.post("/api/v1/apps/hello/domains", json={}).status_code == 400
    assert [d["hostname"] for d in client.get("/api/v1/apps/hello/domains").json] == [
        "www.example.com"
    ]
    assert client.delete("/api/v1/apps/hello/domains/www.example.com").status_code == 204
    assert client.delete("/api/v1/apps/hello/domains/www.example.com").status_code == 404


# --- logs ----------------------------------------------------------------------------


def test_logs_recent_lines_with_filters(client: FlaskClient, settings: Settings) -> None:
    client.post("/api/v1/apps", json={"name": "hello"})
    log_dir = settings.logs_dir("hello")
    append_line(log_dir, "web.1", LogLine(now_stamp(), "app", "web.1", "first"))
    append_line(log_dir, "router", LogLine(now_stamp(), "router", "", "at=info path=/"))
    append_line(log_dir, "worker.1", LogLine(now_stamp(), "app", "worker.1", "working"))
    text = client.get("/api/v1/apps/hello/logs").get_data(as_text=True)
    assert [line.split(": ", 1)[1] for line in text.splitlines()] == [
        "first",
        "at=info path=/",
        "working",
    ]
    assert "router: at=info" in client.get("/api/v1/apps/hello/logs?source=router").text
    only_web = client.get("/api/v1/apps/hello/logs?dyno=web").text
    assert "first" in only_web and "working" not in only_web
    assert client.get("/api/v1/apps/hello/logs?n=1").text.endswith("app[worker.1]: working\n")
    assert client.get("/api/v1/apps/hello/logs?n=0").status_code == 400
    assert client.get("/api/v1/apps/nope/logs").status_code == 404


def test_logs_tail_streams_new_lines(client: FlaskClient, settings: Settings) -> None:
    client.post("/api/v1/apps", json={"name": "hello"})
    log_dir = settings.logs_dir("hello")
    append_line(log_dir, "web.1", LogLine(now_stamp(), "app", "web.1", "old"))
    response = client.get("/api/v1/apps/hello/logs?tail=1", buffered=False)
    chunks = (chunk for chunk in response.iter_encoded() if chunk)
    assert next(chunks).decode().endswith("app[web.1]: old\n")
    append_line(log_dir, "web.1", LogLine(now_stamp(), "app", "web.1", "new"))
    assert next(chunks).decode().endswith("app[web.1]: new\n")
    response.close()


# --- builds and one-off runs (through a stand-in for the deploy pipeline) -------------


class StandInPipeline:
    """Answers like the real pipeline: lines of text, the verdict last."""

    def build(self, app_name: str, tar_stream) -> Iterator[str]:
        size = len(tar_stream.read())
        yield f"-----> Received {size} bytes for {app_name}"
        yield "corral-status: succeeded v1"

    def run(self, app_name: str, command: list[str]) -> Iterator[str]:
        if command == ["fail-early"]:
            raise UserError(f"{app_name} has no release yet; deploy it before running commands.")
        yield " ".join(command)
        yield "corral-exit: 0"


def test_builds_and_runs_without_a_deployer_are_503(client: FlaskClient) -> None:
    client.post("/api/v1/apps", json={"name": "hello"})
    response = client.post("/api/v1/apps/hello/builds", data=b"x")
    assert (response.status_code, response.json["id"]) == (503, "unavailable")
    assert client.get("/api/v1/apps/hello/builds").json == []


def test_builds_and_runs_stream_the_deployer_lines(
    app: Flask, client: FlaskClient, store: Store
) -> None:
    app.extensions["corral.pipeline"] = StandInPipeline()
    client.post("/api/v1/apps", json={"name": "hello"})
    built = client.post(
        "/api/v1/apps/hello/builds", data=b"\x1f\x8b" * 10, content_type="application/gzip"
    )
    assert built.mimetype == "text/plain"
    assert built.text == "-----> Received 20 bytes for hello\ncorral-status: succeeded v1\n"
    ran = client.post("/api/v1/apps/hello/run", json={"command": ["echo", "hi"]})
    assert ran.text == "echo hi\ncorral-exit: 0\n"
    early = client.post("/api/v1/apps/hello/run", json={"command": ["fail-early"]})
    assert (early.status_code, early.json["id"]) == (400, "bad_request")
    assert client.post("/api/v1/apps/hello/run", json={"command": "ls"}).status_code == 400
    assert client.post("/api/v1/apps/nope/run", json={"command": ["ls"]}).status_code == 404
    store.create_build("hello", "abc1234")
    assert [b["source_ref"] for b in client.get("/api/v1/apps/hello/builds").json] == ["abc1234"]


# --- a real gunicorn -----------------------------------------------------------------


def test_gunicorn_serves_the_api(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Store.for_settings(Settings.load(home)) as store:
        _, secret = store.create_token("test")
    port = free_port()
    env = {**os.environ, "CORRAL_HOME": str(home), "CORRAL_DOMAIN": "example.test"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "corral.api.wsgi:app"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}/api/v1"
        assert wait_for_http(f"{base}/health", process=server).json()["status"] == "ok"
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {secret}"}) as http:
            created = http.post("/apps", json={"name": "hello"})
            assert created.status_code == 201
            assert created.json()["web_url"] == "http://hello.example.test:8080/"
            assert [app["name"] for app in http.get("/apps").json()] == ["hello"]
            # One sync worker: the next request is only served once the tail has noticed
            # that its client left.
            with http.stream("GET", "/apps/hello/logs", params={"tail": 1}) as tail:
                assert tail.status_code == 200
            assert http.get("/health", timeout=10).status_code == 200
        assert httpx.get(f"{base}/apps").status_code == 401
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert b"Traceback" not in stderr
