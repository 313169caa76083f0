"""A stand-in corral API for the CLI's command tests: apps, config, releases, formation,
dynos, domains and logs, exactly as docs/api.md describes them, recording every write."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify, request

from support.stub_api import api_error, require_token

NOW = "2026-11-24T10:00:00+00:00"


@dataclass
class State:
    """What the fake server holds, and every write it received (method, path, body)."""

    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    config: dict[str, str] = field(default_factory=lambda: {"GREETING": "hello world"})
    version: int = 3
    writes: list[tuple[str, str, Any]] = field(default_factory=list)
    params: list[dict[str, str]] = field(default_factory=list)
    formation: dict[str, int] = field(default_factory=lambda: {"web": 2})
    #: the newest release never finishes rolling out (its dynos are still starting)
    stuck: bool = False


def release(version: int, description: str, status: str = "succeeded") -> dict[str, Any]:
    """A release of the app ``hello``, succeeded unless said otherwise."""
    return {
        "app": "hello",
        "version": version,
        "name": f"v{version}",
        "description": description,
        "status": status,
        "slug_id": "abc123",
        "process_types": {"web": "gunicorn app:app"},
        "config_keys": ["GREETING"],
        "created_at": NOW,
    }


def contract_app(state: State) -> Flask:
    """The stand-in API over ``state``."""
    app = Flask(__name__)

    def app_json(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "created_at": NOW,
            "maintenance": False,
            "web_url": f"http://{name}.localhost:8080/",
            "current_release": state.version,
        }

    def newest(description: str) -> dict[str, Any]:
        return release(state.version, description, "pending" if state.stuck else "succeeded")

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
        return jsonify({"config": state.config, "release": newest("Set config")})

    @app.get("/api/v1/apps/<name>/releases")
    @require_token
    def releases(name: str):
        return jsonify([release(v, f"Deploy {v}") for v in range(state.version, 0, -1)])

    @app.get("/api/v1/apps/<name>/releases/<int:version>")
    @require_token
    def release_info(name: str, version: int):
        if version > state.version:
            return api_error(404, "not_found", f"{name} has no release v{version}.")
        found = newest("Deploy") if version == state.version else release(version, "Deploy")
        return jsonify(found | {"freeze": ["flask==3.1.3"]})

    @app.post("/api/v1/apps/<name>/rollback")
    @require_token
    def rollback(name: str):
        target = (request.get_json() or {}).get("version", state.version - 1)
        state.version += 1
        return jsonify(newest(f"Rollback to v{target}")), 201

    def formation_json() -> list[dict[str, Any]]:
        return [{"type": t, "quantity": q, "command": "x"} for t, q in state.formation.items()]

    @app.get("/api/v1/apps/<name>/formation")
    @require_token
    def formation(name: str):
        return jsonify(formation_json())

    @app.patch("/api/v1/apps/<name>/formation")
    @require_token
    def scale(name: str):
        state.formation.update(request.get_json())
        return jsonify(formation_json())

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
