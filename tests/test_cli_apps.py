"""apps, config, releases, ps, domains and logs commands against a docs/api.md server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, jsonify, request

from support.cli import cli_env, corral, git, git_repo
from support.stub_api import api_error, require_token, serve

NOW = "2026-11-24T10:00:00+00:00"


@dataclass
class State:
    """What the fake server holds, and every write it received (method, path, body)."""

    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    config: dict[str, str] = field(default_factory=lambda: {"GREETING": "hello world"})
    version: int = 3
    writes: list[tuple[str, str, Any]] = field(default_factory=list)
    params: list[dict[str, str]] = field(default_factory=list)


def release(version: int, description: str) -> dict[str, Any]:
    return {
        "app": "hello",
        "version": version,
        "name": f"v{version}",
        "description": description,
        "status": "succeeded",
        "slug_id": "abc123",
        "process_types": {"web": "gunicorn app:app"},
        "config_keys": ["GREETING"],
        "created_at": NOW,
    }


def contract_app(state: State) -> Flask:
    app = Flask(__name__)

    def app_json(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "created_at": NOW,
            "maintenance": False,
            "web_url": f"http://{name}.localhost:8080/",
            "current_release": state.version,
        }

    @app.before_request
    def record() -> None:
        if request.method != "GET":
            state.writes.append((request.method, request.path, request.get_json(silent=True)))

    @app.get("/api/v1/apps")
    @require_token
    def apps():
        return jsonify([app_json(name) for name in state.apps])

    @app.post("/api/v1/apps")
    @require_token
    def create():
        name = (request.get_json() or {}).get("name") or "brave-otter-42"
        if name in state.apps:
            return api_error(409, "conflict", f"The name {name} is taken; choose another.")
        state.apps[name] = app_json(name)
        return jsonify(app_json(name)), 201

    @app.get("/api/v1/apps/<name>")
    @require_token
    def info(name: str):
        return jsonify(
            app_json(name)
            | {
                "release": release(state.version, "Deploy abc123"),
                "formation": [{"type": "web", "quantity": 2, "command": "gunicorn app:app"}],
                "dynos": [],
                "domains": [{"hostname": "www.example.com", "app": name}],
            }
        )

    @app.delete("/api/v1/apps/<name>")
    @require_token
    def destroy(name: str):
        state.apps.pop(name, None)
        return "", 204

    @app.put("/api/v1/apps/<name>/maintenance")
    @require_token
    def maintenance(name: str):
        return jsonify(app_json(name) | {"maintenance": request.get_json()["enabled"]})

    @app.get("/api/v1/apps/<name>/config")
    @require_token
    def config(name: str):
        return jsonify(state.config)

    @app.patch("/api/v1/apps/<name>/config")
    @require_token
    def set_config(name: str):
        for key, value in request.get_json().items():
            if value is None:
                state.config.pop(key, None)
            else:
                state.config[key] = value
        state.version += 1
        return jsonify({"config": state.config, "release": release(state.version, "Set config")})

    @app.get("/api/v1/apps/<name>/releases")
    @require_token
    def releases(name: str):
        return jsonify([release(v, f"Deploy {v}") for v in range(state.version, 0, -1)])

    @app.get("/api/v1/apps/<name>/releases/<int:version>")
    @require_token
    def release_info(name: str, version: int):
        if version > state.version:
            return api_error(404, "not_found", f"{name} has no release v{version}.")
        return jsonify(release(version, "Deploy") | {"freeze": ["flask==3.1.3"]})

    @app.post("/api/v1/apps/<name>/rollback")
    @require_token
    def rollback(name: str):
        target = (request.get_json() or {}).get("version", state.version - 1)
        state.version += 1
        return jsonify(release(state.version, f"Rollback to v{target}")), 201

    @app.patch("/api/v1/apps/<name>/formation")
    @require_token
    def scale(name: str):
        body = request.get_json()
        return jsonify([{"type": t, "quantity": q, "command": "x"} for t, q in body.items()])

    @app.get("/api/v1/apps/<name>/dynos")
    @require_token
    def dynos(name: str):
        dyno = {"app": name, "name": "web.1", "type": "web", "release": "v3", "state": "up"}
        dyno |= {"since": NOW, "port": 5001, "pid": 42, "restarts": 0, "next_restart_at": None}
        return jsonify([dyno | {"rss_bytes": 52_400_000, "cpu_percent": 1.5}])

    @app.post("/api/v1/apps/<name>/domains")
    @require_token
    def add_domain(name: str):
        return jsonify({"hostname": request.get_json()["hostname"], "app": name}), 201

    @app.get("/api/v1/apps/<name>/logs")
    @require_token
    def logs(name: str):
        state.params.append(dict(request.args))
        lines = [
            "2026-11-24T10:00:00.000001+00:00 app[web.1]: started",
            "2026-11-24T10:00:01.000001+00:00 router: at=info method=GET path=/ status=200",
        ]
        return Response("".join(line + "\n" for line in lines), mimetype="text/plain")

    return app


@pytest.fixture
def state() -> State:
    return State(apps={"hello": {}})


@pytest.fixture
def env(state: State, tmp_path: Path) -> Iterator[dict[str, str]]:
    with serve(contract_app(state)) as url:
        yield cli_env(tmp_path, server=url) | {"CORRAL_APP": "hello"}


def test_apps_create_in_a_repository_adds_the_corral_remote(env: dict[str, str], tmp_path: Path):
    repo = git_repo(tmp_path / "shop", env)
    result = corral("apps:create", "shop", env=env, cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "Creating shop... done, shop" in result.stdout
    assert "http://shop.localhost:8080/" in result.stdout
    assert git("remote", "get-url", "corral", cwd=repo, env=env).strip().endswith("/git/shop.git")
    taken = corral("apps:create", "shop", env=env, cwd=repo)
    assert taken.returncode == 1
    assert taken.stderr.strip() == "error: The name shop is taken; choose another."


def test_apps_lists_as_json_and_table(env: dict[str, str]):
    listed = corral("apps", "--json", env=env)
    assert [app["name"] for app in json.loads(listed.stdout)] == ["hello"]
    table = corral("apps", env=env)
    assert "hello" in table.stdout and "v3" in table.stdout


def test_apps_info_shows_release_formation_and_domains(env: dict[str, str]):
    result = corral("apps:info", env=env)
    assert result.returncode == 0, result.stderr
    for expected in ("=== hello", "v3", "web=2", "www.example.com", "/git/hello.git"):
        assert expected in result.stdout
    assert json.loads(corral("apps:info", "--json", env=env).stdout)["name"] == "hello"


@pytest.mark.parametrize(
    ("confirm", "message"),
    [
        ([], "pass --confirm hello to go ahead"),
        (["--confirm", "hellp"], "--confirm hellp does not match the app hello"),
    ],
)
def test_apps_destroy_needs_a_matching_confirm(
    env: dict[str, str], state: State, confirm: list[str], message: str
):
    result = corral("apps:destroy", "hello", *confirm, env=env)
    assert result.returncode == 1
    assert message in result.stderr
    assert state.writes == []


def test_apps_destroy_with_confirm_deletes_the_app(env: dict[str, str], state: State):
    result = corral("apps:destroy", "hello", "--confirm", "hello", env=env)
    assert result.returncode == 0, result.stderr
    assert state.writes == [("DELETE", "/api/v1/apps/hello", None)]


def test_maintenance_on_and_open(env: dict[str, str], state: State):
    assert corral("maintenance:on", env=env).returncode == 0
    assert state.writes == [("PUT", "/api/v1/apps/hello/maintenance", {"enabled": True})]
    assert corral("open", env=env).stdout == "http://hello.localhost:8080/\n"


def test_config_set_rejects_an_argument_without_equals(env: dict[str, str], state: State):
    result = corral("config:set", "GOOD=1", "FOO", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: 'FOO' is not KEY=value")
    assert state.writes == []


def test_config_set_and_unset_report_the_new_release(env: dict[str, str], state: State):
    result = corral("config:set", "SECRET=a=b", "DEBUG=", env=env)
    assert result.returncode == 0, result.stderr
    assert "Setting SECRET and DEBUG and restarting hello... done, v4" in result.stdout
    assert state.writes == [("PATCH", "/api/v1/apps/hello/config", {"SECRET": "a=b", "DEBUG": ""})]
    result = corral("config:unset", "SECRET", "DEBUG", "GREETING", env=env)
    assert "Unsetting SECRET, DEBUG and GREETING and restarting hello... done, v5" in result.stdout
    assert state.writes[-1][2] == {"SECRET": None, "DEBUG": None, "GREETING": None}


def test_config_shows_shell_json_and_single_values(env: dict[str, str], state: State):
    state.config["QUOTED"] = "it's here"
    assert corral("config", "--shell", env=env).stdout == (
        "GREETING='hello world'\nQUOTED='it'\"'\"'s here'\n"
    )
    assert json.loads(corral("config", "--json", env=env).stdout) == state.config
    assert corral("config:get", "GREETING", env=env).stdout == "hello world\n"
    missing = corral("config:get", "NOPE", env=env)
    assert missing.returncode == 1 and "hello has no config var NOPE" in missing.stderr


def test_releases_list_info_and_rollback(env: dict[str, str], state: State):
    listed = corral("releases", "-n", "2", "--json", env=env)
    assert [r["name"] for r in json.loads(listed.stdout)] == ["v3", "v2"]
    info = corral("releases:info", "v2", env=env)
    assert info.returncode == 0, info.stderr
    assert "Release v2 of hello" in info.stdout and "gunicorn app:app" in info.stdout
    result = corral("rollback", "v2", env=env)
    assert "Rolling back hello to v2... done, v4" in result.stdout
    assert corral("rollback", "2", env=env).returncode == 0
    assert [body for _, _, body in state.writes] == [{"version": 2}, {"version": 2}]
    bad = corral("rollback", "two", env=env)
    assert bad.returncode == 1 and "'two' is not a release version" in bad.stderr


def test_ps_scale_validates_type_equals_quantity(env: dict[str, str], state: State):
    for argument in ("web", "web=many", "web=-1", "Web=1"):
        result = corral("ps:scale", argument, env=env)
        assert result.returncode == 1
        assert f"'{argument}' is not TYPE=QUANTITY" in result.stderr
    assert state.writes == []
    result = corral("ps:scale", "web=3", "worker=1", env=env)
    assert result.returncode == 0, result.stderr
    assert "now running web at 3, worker at 1" in result.stdout
    assert state.writes == [("PATCH", "/api/v1/apps/hello/formation", {"web": 3, "worker": 1})]


def test_ps_table_and_unsupported_restart(env: dict[str, str]):
    table = corral("ps", env=env)
    assert table.returncode == 0, table.stderr
    for expected in ("web.1", "up", "v3", "5001", "52.4", "1.5", "ago"):
        assert expected in table.stdout
    restart = corral("ps:restart", "web", env=env)
    assert restart.returncode == 1
    assert restart.stderr.strip() == "error: This server does not support ps:restart yet."


def test_domains_add_and_logs_parameters(env: dict[str, str], state: State):
    assert corral("domains:add", "www.example.com", env=env).returncode == 0
    assert state.writes == [("POST", "/api/v1/apps/hello/domains", {"hostname": "www.example.com"})]
    result = corral("logs", "-n", "5", "-s", "router", "-d", "web.1", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "2026-11-24T10:00:00.000001+00:00 app[web.1]: started"
    assert state.params == [{"n": "5", "source": "router", "dyno": "web.1"}]
