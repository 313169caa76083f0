"""The dashboard's forms through the Flask test client on a real store: each action, and
each way a user can get one wrong (a clear message on the page, nothing changed)."""

from __future__ import annotations

import re
import time
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from corral.config import Settings
from corral.store import Dyno, Store
from support.dashboard import WEB, csrf_of

TWO = {"web": "gunicorn app:app", "worker": "python worker.py"}


def post(client: FlaskClient, path: str, **form: str):
    """Submit a form the way the page does, then follow the redirect to the page it names."""
    csrf = csrf_of(client.get("/").text)
    response = client.post(path, data={"csrf_token": csrf, **form})
    assert response.status_code == 303, response.text
    return client.get(response.location)


def flash_of(html: str) -> str:
    match = re.search(
        r'<div class="alert alert-(\w+)[^"]*flash"[^>]*>\s*(.*?)\s*<button', html, re.S
    )
    assert match, "no message on the page"
    return f"{match.group(1)}: {match.group(2)}"


def deployed(store: Store, settings: Settings, types=TWO) -> None:
    store.create_app("hello")
    slugs = settings.slugs_dir("hello")
    for name in ("s1", "s2"):  # on disk, as a build leaves them (a rollback checks)
        (slugs / name).mkdir(parents=True)
    store.create_release("hello", "s1", slugs / "s1", types, "Deploy abc123")
    store.create_release("hello", "s2", slugs / "s2", types, "Deploy def456")


def test_create_app_opens_its_page_with_the_git_lines(client: FlaskClient, store: Store) -> None:
    page = post(client, "/apps", name="fresh")
    assert flash_of(page.text) == "success: Created fresh. Push your code to deploy it."
    assert store.get_app("fresh").name == "fresh"
    assert "git remote add corral http://localhost/git/fresh.git" in page.text
    assert "git push corral main" in page.text


def test_create_app_with_an_empty_name_picks_one(client: FlaskClient, store: Store) -> None:
    page = post(client, "/apps", name="")
    assert "success: Created " in flash_of(page.text)
    assert len(store.list_apps()) == 1


def test_create_app_refuses_a_bad_or_taken_name(client: FlaskClient, store: Store) -> None:
    page = post(client, "/apps", name="Bad_Name")
    assert flash_of(page.text).startswith("danger: ") and "lowercase" in page.text
    store.create_app("taken")
    page = post(client, "/apps", name="taken")
    assert "danger: The app name &#39;taken&#39; is already taken" in flash_of(page.text)
    assert [app.name for app in store.list_apps()] == ["taken"]


def test_overview_shows_status_release_and_dyno_counts(
    client: FlaskClient, store: Store, settings: Settings
) -> None:
    deployed(store, settings)
    store.create_app("quiet")
    for name, kind, state in [
        ("web.1", "web", "up"),
        ("web.2", "web", "up"),
        ("worker.1", "worker", "up"),
    ]:
        store.upsert_dyno(Dyno("hello", name, kind, 2, None, None, None, state, since=time.time()))
    text = client.get("/").text
    hello = text[text.index('data-app="hello"') : text.index('data-app="quiet"')]
    assert 'data-status="up"' in hello and "v2" in hello
    assert "web <strong>2</strong>" in hello and "worker <strong>1</strong>" in hello
    assert "s ago" in hello
    quiet = text[text.index('data-app="quiet"') :]
    assert 'data-status="idle"' in quiet and "not deployed" in quiet
    store.upsert_dyno(Dyno("hello", "web.2", "web", 2, None, None, None, "crashed", since=1.0))
    assert (
        'data-app="hello">\n        <td><span class="app-status app-status-crashed"'
        in client.get("/").text
    )


def test_empty_overview_says_how_to_start(client: FlaskClient) -> None:
    text = client.get("/").text
    assert "No apps yet" in text and "git push corral main" in text


def test_scale_sets_the_formation(client: FlaskClient, store: Store, settings: Settings) -> None:
    deployed(store, settings)
    page = post(client, "/apps/hello/scale", type="web", quantity="3")
    assert flash_of(page.text) == "success: Scaled web to 3."
    assert {e.process_type: e.quantity for e in store.formation("hello")}["web"] == 3
    assert 'id="scale-web" name="quantity" value="3"' in page.text


def test_scale_refuses_bad_numbers_and_types(
    client: FlaskClient, store: Store, settings: Settings
) -> None:
    deployed(store, settings)
    before = store.formation("hello")
    for form, expected in [
        ({"type": "web", "quantity": "two"}, "whole number, not &#39;two&#39;"),
        ({"type": "web", "quantity": "500"}, "from 0 to 100"),
        ({"type": "clock", "quantity": "1"}, "has no process type clock"),
    ]:
        page = post(client, "/apps/hello/scale", **form)
        assert flash_of(page.text).startswith("danger: ") and expected in page.text
    assert store.formation("hello") == before


def test_the_release_phase_has_no_scale_form_and_cannot_be_scaled(
    client: FlaskClient, store: Store, settings: Settings
) -> None:
    deployed(store, settings, types={**TWO, "release": "python migrate.py"})
    page = client.get("/apps/hello").text
    assert 'id="scale-web"' in page and 'id="scale-worker"' in page
    assert 'id="scale-release"' not in page
    page = post(client, "/apps/hello/scale", type="release", quantity="1")
    assert flash_of(page.text).startswith("danger: release is the release phase")
    assert [e.process_type for e in store.formation("hello")] == ["web", "worker"]


def test_scale_before_the_first_deploy_says_to_push(client: FlaskClient, store: Store) -> None:
    store.create_app("hello")
    page = post(client, "/apps/hello/scale", type="web", quantity="1")
    assert "nothing to scale; deploy it with git push first" in flash_of(page.text)


def test_restart_asks_the_manager(client: FlaskClient, store: Store, settings: Settings) -> None:
    deployed(store, settings)
    page = post(client, "/apps/hello/restart")
    assert flash_of(page.text) == "success: Restarting all dynos."
    assert store.take_dyno_requests() == [("hello", "restart", None)]


def test_rollback_makes_a_new_release(
    client: FlaskClient, store: Store, settings: Settings
) -> None:
    deployed(store, settings)
    page = post(client, "/apps/hello/rollback", version="1")
    assert flash_of(page.text) == (
        "success: Rolling back to v1: v3 is rolling out; the current release serves until it "
        "starts."
    )
    assert store.current_release("hello").version == 2
    store.mark_release_succeeded("hello", 3)  # as the supervisor does once its dynos are up
    assert store.current_release("hello").slug_id == "s1"
    assert "Rollback to v1" in page.text


def test_rollback_refusals_change_nothing(
    client: FlaskClient, store: Store, settings: Settings
) -> None:
    deployed(store, settings)
    for version, expected in [("v9", "has no release v9"), ("latest", "such as v3")]:
        page = post(client, "/apps/hello/rollback", version=version)
        assert flash_of(page.text).startswith("danger: ") and expected in page.text
    assert [r.version for r in store.releases("hello")] == [2, 1]


def test_config_set_reveal_change_and_remove(
    client: FlaskClient, store: Store, settings: Settings
) -> None:
    deployed(store, settings)
    page = post(client, "/apps/hello/config", key="GREETING", value="s3cr3t-value")
    assert flash_of(page.text) == (
        "success: Set GREETING; hello is rolling out v3; the current release serves until it "
        "starts."
    )
    store.mark_release_succeeded("hello", 3)  # as the supervisor does once its dynos are up
    page = client.get("/apps/hello")
    assert 'data-key="GREETING"' in page.text
    assert "s3cr3t-value" not in page.text  # hidden until revealed
    revealed = client.get("/apps/hello/config/GREETING")
    assert revealed.json == {"key": "GREETING", "value": "s3cr3t-value"}
    assert revealed.headers["Cache-Control"] == "no-store"
    post(client, "/apps/hello/config", key="GREETING", value="changed")
    store.mark_release_succeeded("hello", 4)
    assert store.config("hello") == {"GREETING": "changed"}
    page = post(client, "/apps/hello/config/unset", key="GREETING")
    assert flash_of(page.text).startswith("success: Removed GREETING; hello is rolling out v5;")
    store.mark_release_succeeded("hello", 5)
    assert store.config("hello") == {}
    assert client.get("/apps/hello/config/GREETING").status_code == 404


def test_config_before_the_first_deploy_waits_for_it(client: FlaskClient, store: Store) -> None:
    store.create_app("hello")
    page = post(client, "/apps/hello/config", key="A", value="1")
    assert flash_of(page.text) == "success: Set A; it applies from the first deploy."


def test_config_refuses_bad_names(client: FlaskClient, store: Store, settings: Settings) -> None:
    deployed(store, settings)
    for key in ["", "1BAD", "has space"]:
        page = post(client, "/apps/hello/config", key=key, value="x")
        assert flash_of(page.text).startswith("danger: ")
    assert store.config("hello") == {}
    assert len(store.releases("hello")) == 2


def test_config_value_needs_a_session(app: Flask, store: Store) -> None:
    store.create_app("hello")
    assert app.test_client().get("/apps/hello/config/A").status_code == 401


def test_domains_add_and_remove(client: FlaskClient, store: Store) -> None:
    store.create_app("hello")
    page = post(client, "/apps/hello/domains", hostname="www.example.com")
    assert flash_of(page.text) == "success: Added www.example.com; point its DNS at this server."
    assert 'data-domain="www.example.com"' in page.text
    page = post(client, "/apps/hello/domains/remove", hostname="www.example.com")
    assert flash_of(page.text) == "success: Removed www.example.com."
    assert store.domains("hello") == []


def test_domains_refuse_bad_and_unknown_hostnames(client: FlaskClient, store: Store) -> None:
    store.create_app("hello")
    for path, hostname in [
        ("/apps/hello/domains", "not a host"),
        ("/apps/hello/domains", ""),
        ("/apps/hello/domains/remove", "nope.example.com"),
    ]:
        page = post(client, path, hostname=hostname)
        assert flash_of(page.text).startswith("danger: ")
    assert store.domains("hello") == []


def test_maintenance_switch(client: FlaskClient, store: Store) -> None:
    store.create_app("hello")
    page = post(client, "/apps/hello/maintenance", enabled="on")
    assert "Maintenance mode is on" in flash_of(page.text)
    assert store.get_app("hello").maintenance
    assert "Turn maintenance off" in page.text
    post(client, "/apps/hello/maintenance", enabled="off")
    assert not store.get_app("hello").maintenance


def test_actions_on_a_missing_app_say_so(client: FlaskClient) -> None:
    csrf = csrf_of(client.get("/").text)
    response = client.post("/apps/ghost/scale", data={"csrf_token": csrf, "type": "web"})
    assert response.status_code == 303
    page = client.get(response.location)
    assert page.status_code == 404 and "No app named &#39;ghost&#39;" in page.text


def test_every_action_needs_the_csrf_token(
    client: FlaskClient, store: Store, settings: Settings
) -> None:
    deployed(store, settings)
    for path, form in [
        ("/apps", {"name": "x1"}),
        ("/apps/hello/scale", {"type": "web", "quantity": "5"}),
        ("/apps/hello/rollback", {"version": "1"}),
        ("/apps/hello/config", {"key": "A", "value": "1"}),
        ("/apps/hello/domains", {"hostname": "a.example.com"}),
        ("/apps/hello/maintenance", {"enabled": "on"}),
    ]:
        assert client.post(path, data=form).status_code == 400
    assert [a.name for a in store.list_apps()] == ["hello"]
    assert store.config("hello") == {} and store.domains("hello") == []
    assert len(store.releases("hello")) == 2 and not store.get_app("hello").maintenance


def test_build_page_shows_the_log_and_links_from_the_release(
    client: FlaskClient, store: Store, settings: Settings, tmp_path: Path
) -> None:
    store.create_app("hello")
    log = tmp_path / "build.log"
    log.write_text("-----> Installing requirements with uv\n-----> Done <script>\n")
    build = store.create_build("hello", "abc123", log_path=log)
    store.update_build(build.id, status="succeeded", slug_id="s1")
    store.create_release("hello", "s1", settings.slugs_dir("hello") / "s1", WEB, "Deploy abc123")
    page = client.get("/apps/hello").text
    assert f'href="/apps/hello/builds/{build.id}"' in page
    build_page = client.get(f"/apps/hello/builds/{build.id}")
    assert "Installing requirements with uv" in build_page.text
    assert "Done &lt;script&gt;" in build_page.text and "made v1" in build_page.text
    store.create_app("other")
    assert client.get(f"/apps/other/builds/{build.id}").status_code == 404
    assert client.get("/apps/hello/builds/nope").status_code == 404


def test_live_fragment_has_the_status_dynos_and_releases(
    client: FlaskClient, store: Store, settings: Settings
) -> None:
    deployed(store, settings)
    fragment = client.get("/apps/hello/live").text
    assert "No dynos running." in fragment and 'data-status="idle"' in fragment
    store.upsert_dyno(Dyno("hello", "web.1", "web", 2, None, None, None, "up", since=time.time()))
    fragment = client.get("/apps/hello/live").text
    assert 'data-dyno="web.1" data-state="up"' in fragment and 'data-status="up"' in fragment
    assert 'data-release="v2"' in fragment and "<html" not in fragment
    for region in ("app-state", "dynos-live", "releases-live"):
        assert f'id="{region}"' in fragment
        assert f'id="{region}" data-live' in client.get("/apps/hello").text


def test_paths_that_are_not_app_names_are_404(client: FlaskClient) -> None:
    for path in ["/apps/..", "/apps/%2E%2E", "/apps/..%2Fetc/live", "/apps/../builds/x"]:
        response = client.get(path)
        assert response.status_code == 404, path


def test_destroy_needs_the_name_typed_then_removes_the_app(
    client: FlaskClient, store: Store, settings: Settings
) -> None:
    deployed(store, settings)
    (settings.apps_dir / "hello").mkdir(parents=True, exist_ok=True)
    for typed in ["", "hell", "HELLO"]:
        page = post(client, "/apps/hello/destroy", confirm=typed)
        assert (
            flash_of(page.text)
            == "danger: Type the app&#39;s name, hello, to confirm destroying it."
        )
    assert store.get_app("hello")
    page = post(client, "/apps/hello/destroy", confirm="hello")
    assert flash_of(page.text).startswith("success: Destroyed hello")
    assert store.list_apps() == [] and not (settings.apps_dir / "hello").exists()
    assert 'data-app="hello"' not in page.text


def test_destroy_is_refused_while_a_deploy_is_in_progress(
    client: FlaskClient, store: Store, settings: Settings
) -> None:
    deployed(store, settings)
    store.create_release(
        "hello", "s3", settings.slugs_dir("hello") / "s3", TWO, "Deploy", status="pending"
    )
    page = post(client, "/apps/hello/destroy", confirm="hello")
    assert "is being deployed (v3 is in progress)" in flash_of(page.text)
    assert store.get_app("hello")
