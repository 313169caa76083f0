"""``apps:rename``: the repository, slugs, releases, config, logs, domains and routes follow
the app to its new name, and its dynos keep serving throughout."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from flask.testing import FlaskClient

from corral.config import Settings
from corral.store import Store
from support.cli import corral as run_cli
from support.server import Server, git, make_repo
from support.wait import wait_until

WEB = {"web": "gunicorn app:app"}


@pytest.fixture
def client(app, store: Store) -> FlaskClient:
    """An API client with a bearer token, as the CLI is."""
    test_client = app.test_client()
    test_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {store.create_token('t')[1]}"
    return test_client


def corral(server: Server, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=server.env, timeout=120, cwd=cwd)


def get(server: Server, host: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{server.port}/", headers={"Host": host}, timeout=10)


class Load(threading.Thread):
    """Requests to one host until stopped (bounded in count and time), counting failures."""

    def __init__(self, server: Server, host: str) -> None:
        super().__init__(daemon=True)
        self.server, self.host = server, host
        self.stop = threading.Event()
        self.answers: list[int | str] = []

    def run(self) -> None:
        deadline = time.monotonic() + 120
        while not self.stop.is_set() and time.monotonic() < deadline and len(self.answers) < 5000:
            try:
                self.answers.append(get(self.server, self.host).status_code)
            except httpx.TransportError as error:
                self.answers.append(type(error).__name__)
            time.sleep(0.02)


@pytest.mark.slow
def test_rename_moves_everything_and_the_dynos_keep_serving(server: Server, tmp_path) -> None:
    server.api.post("/apps", json={"name": "alpha"}).raise_for_status()
    repo = make_repo(tmp_path, server, "alpha")
    git(repo, "push", "corral", "main")
    assert corral(server, "config:set", "GREETING=hi", "-a", "alpha").returncode == 0
    assert corral(server, "domains:add", "www.alpha.test", "-a", "alpha").returncode == 0
    wait_until(lambda: get(server, "www.alpha.test").text == "hi", message="the domain to serve")
    before = {d["name"]: d["pid"] for d in server.api.get("/apps/alpha").json()["dynos"]}

    load = Load(server, "www.alpha.test")
    load.start()
    renamed = corral(server, "apps:rename", "alpha", "bravo", cwd=repo)
    assert renamed.returncode == 0, renamed.stderr
    assert "Git remote corral updated." in renamed.stdout
    assert git(repo, "remote", "get-url", "corral").stdout.strip().endswith("/git/bravo.git")

    # the dynos roll onto the new paths, and the old slug links go once they have
    def rolled() -> bool:
        dynos = server.api.get("/apps/bravo").json()["dynos"]
        return bool(dynos) and all(
            d["state"] == "up" and d["pid"] != before.get(d["name"]) for d in dynos
        )

    wait_until(rolled, timeout=60, message="the dynos to restart under the new name")
    wait_until(lambda: not (server.home / "apps" / "alpha").exists(), timeout=30,
               message="the old name's slug links to be removed")  # fmt: skip
    load.stop.set()
    load.join()
    assert load.answers and set(load.answers) == {200}, sorted(set(map(str, load.answers)))

    assert get(server, "bravo.localhost").text == "hi"
    assert get(server, "alpha.localhost").status_code == 404
    assert server.api.get("/apps/alpha").status_code == 404
    releases = server.api.get("/apps/bravo/releases").json()
    assert [r["version"] for r in releases] == [2, 1]
    assert server.api.get("/apps/bravo/config").json()["GREETING"] == "hi"
    logs = corral(server, "logs", "-a", "bravo", "-n", "1500").stdout
    assert "Starting process with command" in logs and "Renamed from alpha" in logs

    # the repository moved: a push through the updated remote deploys the renamed app
    (repo / "app.py").write_text((repo / "app.py").read_text().replace("hello v1", "hello v2"))
    git(repo, "commit", "-qam", "v2")
    pushed = git(repo, "push", "corral", "main", env=server.env, check=False)
    assert pushed.returncode == 0, pushed.stderr
    assert corral(server, "config:unset", "GREETING", "-a", "bravo").returncode == 0
    assert get(server, "bravo.localhost").text == "hello v2"
    # a release from before the rename still runs: its slug moved with the app
    back = corral(server, "rollback", "v1", "-a", "bravo")
    assert back.returncode == 0, back.stderr
    assert get(server, "bravo.localhost").text == "hello v1"

    # the old name is free, and starts from scratch
    assert corral(server, "apps:create", "alpha", "--no-remote").returncode == 0
    assert server.api.get("/apps/alpha/releases").json() == []
    assert get(server, "bravo.localhost").text == "hello v1"


def test_rename_moves_the_rows_and_slug_paths_in_one_go(store: Store, settings: Settings) -> None:
    store.create_app("alpha")
    slug = settings.slugs_dir("alpha") / "s1"
    store.create_release("alpha", "s1", slug, WEB, "Deploy s1")
    change = store.set_config("alpha", {"A": "1"})
    store.mark_release_succeeded("alpha", change.version)  # as the supervisor would
    store.add_domain("alpha", "www.example.com")
    store.rename_app("alpha", "bravo", settings.apps_dir / "alpha", settings.apps_dir / "bravo")
    assert [app.name for app in store.list_apps()] == ["bravo"]
    assert {r.slug_path for r in store.releases("bravo")} == {settings.slugs_dir("bravo") / "s1"}
    assert store.config("bravo") == {"A": "1"}
    assert [d.app for d in store.domains()] == ["bravo"]
    assert store.take_app_renames() == [("alpha", "bravo")]
    assert store.take_app_renames() == []


@pytest.mark.parametrize(
    ("new", "status", "says"),
    [
        ("bravo", 409, "already taken"),
        ("alpha", 409, "already called alpha"),
        ("Bad_Name", 422, "not a valid app name"),
        ("corral", 422, "reserved"),
        ("bravo.corral.test", 422, "not a valid app name"),
    ],
)
def test_rename_refuses_a_bad_or_taken_name(
    client: FlaskClient, store: Store, new: str, status: int, says: str
) -> None:
    store.create_app("alpha")
    store.create_app("bravo")
    answer = client.patch("/api/v1/apps/alpha", json={"name": new})
    assert answer.status_code == status
    assert says in answer.get_json()["message"]
    assert {app.name for app in store.list_apps()} == {"alpha", "bravo"}


def test_rename_refuses_a_name_whose_host_is_a_custom_domain(
    client: FlaskClient, store: Store
) -> None:
    store.create_app("alpha")
    store.create_app("bravo")
    store.add_domain("bravo", "charlie.corral.test")  # added before the platform had a domain
    answer = client.patch("/api/v1/apps/alpha", json={"name": "charlie"})
    assert answer.status_code == 409
    assert "custom domain" in answer.get_json()["message"]


def test_rename_waits_for_a_deploy_in_progress(client: FlaskClient, store: Store) -> None:
    store.create_app("alpha")
    store.create_release("alpha", "s1", "/slugs/s1", WEB, "Deploy", status="pending")
    answer = client.patch("/api/v1/apps/alpha", json={"name": "bravo"})
    assert answer.status_code == 409
    assert "rename it when the deploy has finished" in answer.get_json()["message"]
    assert client.patch("/api/v1/apps/alpha", json={}).status_code == 400
    assert client.patch("/api/v1/apps/ghost", json={"name": "bravo"}).status_code == 404


def test_rename_without_names_says_how(tmp_path: Path) -> None:
    result = run_cli("apps:rename", env={"CORRAL_CREDENTIALS": str(tmp_path / "c.json")})
    assert result.returncode == 1
    assert "corral apps:rename OLD NEW" in result.stderr
    assert "Traceback" not in result.stderr
