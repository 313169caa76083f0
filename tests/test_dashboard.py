"""The dashboard through the Flask test client on a real store, plus live logs over SSE
through a real gunicorn: login, sessions, CSRF, the apps and app pages, Bootstrap files."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient

from corral.api import create_app
from corral.api.dashboard import SECRET_FILE
from corral.config import Settings
from corral.logfiles import LogLine, append_line
from corral.store import Dyno, Store
from support.dashboard import WEB, csrf_of, log_in
from support.processes import base_environ, free_port
from support.wait import wait_for_http


def stamp(delta: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delta)).isoformat()


def test_wrong_token_is_401_with_a_clear_message(app: Flask, secret: str) -> None:
    client = app.test_client()
    csrf = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"csrf_token": csrf, "token": "corral_x_nope"})
    assert response.status_code == 401
    assert response.content_type.startswith("text/html")
    assert "That token is not valid" in response.text
    assert client.get("/").status_code == 302


def test_right_token_redirects_to_the_apps_listed_in_the_store(
    app: Flask, store: Store, secret: str
) -> None:
    store.create_app("hello")
    store.create_app("world")
    store.set_maintenance("world", True)
    client = app.test_client()
    csrf = csrf_of(client.get("/login").text)
    response = client.post("/login", data={"csrf_token": csrf, "token": secret})
    assert (response.status_code, response.location) == (302, "/")
    page = client.get("/")
    assert page.status_code == 200
    assert 'href="/apps/hello"' in page.text and 'href="/apps/world"' in page.text
    assert "http://hello.corral.test:9090/" in page.text
    assert "maintenance" in page.text


@pytest.mark.parametrize("path", ["/", "/apps/hello"])
def test_pages_redirect_to_login_without_a_session(app: Flask, path: str) -> None:
    response = app.test_client().get(path)
    assert (response.status_code, response.location) == (302, "/login")


def test_log_stream_without_a_session_is_401(app: Flask) -> None:
    assert app.test_client().get("/apps/hello/logs/stream").status_code == 401


def test_session_of_a_deleted_token_is_logged_out(client: FlaskClient, store: Store) -> None:
    assert client.get("/").status_code == 200
    for token in store.tokens():
        store.delete_token(token.id)
    response = client.get("/")
    assert (response.status_code, response.location) == (302, "/login")


def test_post_forms_need_the_csrf_token(app: Flask, client: FlaskClient, secret: str) -> None:
    assert client.post("/logout").status_code == 400
    assert client.post("/logout", data={"csrf_token": "forged"}).status_code == 400
    assert client.get("/").status_code == 200  # still logged in
    fresh = app.test_client()
    fresh.get("/login")
    assert fresh.post("/login", data={"token": secret}).status_code == 400
    csrf = csrf_of(client.get("/").text)
    assert client.post("/logout", data={"csrf_token": csrf}).location == "/login"
    assert client.get("/").status_code == 302


def test_app_page_shows_dynos_releases_domains_and_recent_logs(
    client: FlaskClient, store: Store, settings: Settings
) -> None:
    store.create_app("hello")
    store.create_release("hello", "s1", settings.slugs_dir("hello") / "s1", WEB, "Deploy abc123")
    store.create_release("hello", "s2", settings.slugs_dir("hello") / "s2", WEB, "Deploy def456")
    store.add_domain("hello", "www.example.com")
    for name, state, port in [("web.1", "up", 5001), ("web.2", "crashed", None)]:
        dyno = Dyno("hello", name, "web", 2, None, None, port, state, since=time.time())
        store.upsert_dyno(dyno)
    append_line(settings.logs_dir("hello"), "web.1", LogLine(stamp(), "app", "web.1", "booted"))
    page = client.get("/apps/hello")
    assert page.status_code == 200
    text = page.text
    for expected in ["Deploy abc123", "Deploy def456", "www.example.com", "web.2", "crashed"]:
        assert expected in text
    assert 'badge text-bg-success">up' in text and 'badge text-bg-danger">crashed' in text
    assert "app[web.1]: booted" in text
    assert 'data-stream="/apps/hello/logs/stream"' in text


def test_unknown_app_answers_an_html_404(client: FlaskClient) -> None:
    response = client.get("/apps/nope")
    assert response.status_code == 404
    assert response.content_type.startswith("text/html")
    assert "No app named" in response.text


def test_unknown_paths_outside_the_api_answer_html(app: Flask) -> None:
    response = app.test_client().get("/no/such/page")
    assert response.status_code == 404
    assert response.content_type.startswith("text/html")


def test_bootstrap_css_and_dashboard_js_are_served_locally(client: FlaskClient) -> None:
    page = client.get("/").text
    css = re.search(r'<link rel="stylesheet" href="([^"]*bootstrap[^"]*\.css)"', page)
    assert css and css.group(1).startswith("/")
    response = client.get(css.group(1))
    assert response.status_code == 200
    assert response.content_type.startswith("text/css")
    assert client.get("/static/dashboard.js").status_code == 200


def test_token_secret_never_appears_in_pages_or_cookies(
    app: Flask, client: FlaskClient, store: Store, secret: str
) -> None:
    store.create_app("hello")
    for path in ["/", "/apps/hello", "/login"]:
        assert secret not in client.get(path).text
    cookie = client.get_cookie("corral_session")
    assert cookie is not None and secret not in cookie.value
    session = app.session_interface.get_signing_serializer(app).loads(cookie.value)
    assert set(session) == {"token_id", "csrf"}
    assert secret not in repr(session)


def test_secret_key_is_kept_private_and_shared_by_every_app(
    settings: Settings, secret: str
) -> None:
    first = create_app(settings)
    key_file = settings.home / SECRET_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    second = create_app(settings)
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    cookie = log_in(first.test_client(), secret).get_cookie("corral_session")
    assert cookie is not None
    other = second.test_client()
    other.set_cookie("corral_session", cookie.value)
    assert other.get("/").status_code == 200


def _text(chunk: str | bytes) -> str:
    return chunk.decode() if isinstance(chunk, bytes) else chunk


def test_log_stream_catches_up_since_a_timestamp_and_sends_heartbeats(
    client: FlaskClient, store: Store, settings: Settings
) -> None:
    store.create_app("hello")
    log_dir = settings.logs_dir("hello")
    old = LogLine(stamp(-10), "app", "web.1", "already on the page")
    missed = LogLine(stamp(), "app", "web.1", "written before the stream")
    append_line(log_dir, "web.1", old)
    append_line(log_dir, "web.1", missed)
    response = client.get(
        "/apps/hello/logs/stream", query_string={"since": old.timestamp}, buffered=False
    )
    try:
        assert response.status_code == 200
        assert response.mimetype == "text/event-stream"
        chunks = iter(response.response)
        assert ": connected" in _text(next(chunks))
        assert _text(next(chunks)) == f"id: {missed.timestamp}\ndata: {missed}\n\n"
        assert _text(next(chunks)) == ": heartbeat\n\n"
    finally:
        response.close()


def test_gunicorn_streams_new_log_lines_to_the_dashboard(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings.load(home)
    with Store.for_settings(settings) as store:
        _, secret = store.create_token("test")
        store.create_app("hello")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
         "--worker-class", "gthread", "--threads", "4", "corral.api.wsgi:app"],
        env={**base_environ(tmp_path), "CORRAL_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/api/v1/health", process=server)
        with httpx.Client(base_url=base, timeout=10) as http:
            csrf = csrf_of(http.get("/login").text)
            assert (
                http.post("/login", data={"csrf_token": csrf, "token": secret}).status_code == 302
            )
            assert all(secret not in value for value in http.cookies.values())
            page = http.get("/apps/hello")
            assert page.status_code == 200
            css = re.search(r'href="(/[^"]*bootstrap[^"]*\.css)"', page.text)
            assert css
            served = http.get(css.group(1))
            assert (served.status_code, served.headers["content-type"].split(";")[0]) == (
                200,
                "text/css",
            )
            line = LogLine(stamp(), "app", "web.1", "live from the test")
            deadline = time.monotonic() + 20
            with http.stream("GET", "/apps/hello/logs/stream") as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                received = []
                for text in stream.iter_lines():
                    received.append(text)
                    if text == ": connected":
                        append_line(settings.logs_dir("hello"), "web.1", line)
                    if text == f"data: {line}" or time.monotonic() > deadline:
                        break
                assert f"data: {line}" in received
            # The stream ended with the client; the worker threads still answer.
            assert http.get("/api/v1/health").status_code == 200
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert b"Traceback" not in stderr
