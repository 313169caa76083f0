"""The platform's own services (API, router) are supervised units, like dynos."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import httpx
import pytest

from support.cli import corral as run_cli
from support.server import Server, git, make_repo, start_server
from support.wait import wait_until

pytestmark = pytest.mark.slow


def corral(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=server.env, timeout=120)


def services(server: Server) -> dict[str, dict]:
    result = corral(server, "ps", "--platform", "--json")
    assert result.returncode == 0, result.stderr
    return {entry["name"]: entry for entry in json.loads(result.stdout)}


def api_answers(server: Server) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{server.port}/api/v1/health").status_code == 200
    except httpx.TransportError:
        return False


def platform_log(server: Server) -> str:
    path = server.home / "logs" / "corral" / "corral.log"
    return path.read_text() if path.exists() else ""


def test_ps_platform_lists_the_api_and_router_up(server: Server) -> None:
    wait_until(lambda: services(server)["api"]["state"] == "up", message="the API to be up")
    listed = services(server)
    assert set(listed) == {"api", "streams", "router"}
    assert listed["router"]["state"] == "up"
    table = corral(server, "ps", "--platform")
    assert table.returncode == 0 and "api" in table.stdout and "router" in table.stdout
    assert "Traceback" not in table.stderr


def test_a_killed_api_is_restarted_and_logged_like_a_dyno(server: Server) -> None:
    before = services(server)["api"]
    os.killpg(before["pid"], signal.SIGKILL)
    wait_until(lambda: api_answers(server) and services(server)["api"]["pid"] != before["pid"],
               timeout=60, message="the supervisor to restart the API")  # fmt: skip
    after = services(server)["api"]
    assert after["state"] == "up" and after["restarts"] == 1
    log = platform_log(server)
    assert "corral[api]: State changed from up to crashed" in log
    assert log.count("corral[api]: Starting process with command") == 2


def test_a_killed_router_is_restarted_and_apps_serve_again(server: Server, tmp_path) -> None:
    server.api.post("/apps", json={"name": "steady"}).raise_for_status()
    git(make_repo(tmp_path, server, "steady"), "push", "corral", "main")
    assert server.app_get("steady").text == "hello v1"
    before = services(server)["router"]
    os.killpg(before["pid"], signal.SIGKILL)

    def serving() -> bool:
        try:
            return server.app_get("steady").text == "hello v1"
        except httpx.TransportError:
            return False

    wait_until(lambda: serving() and services(server)["router"]["pid"] != before["pid"],
               timeout=60, message="the router to come back")  # fmt: skip
    assert "corral[router]: State changed from up to crashed" in platform_log(server)


def test_a_restarted_server_adopts_its_services(server: Server) -> None:
    before = services(server)
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()

    server.process = start_server(server.home, server.port, server.env)
    # the old API and router answer at once: the new server's word is its log line
    adopted = [f"corral[{name}]: Adopted running process (pid {entry['pid']})"
               for name, entry in before.items()]  # fmt: skip
    wait_until(lambda: all(line in platform_log(server) for line in adopted), timeout=30,
               message="the new server to adopt the API and router")  # fmt: skip
    after = services(server)
    assert {name: entry["pid"] for name, entry in after.items()} == {
        name: entry["pid"] for name, entry in before.items()
    }


def test_a_service_found_dead_at_start_is_started_at_once(server: Server) -> None:
    before = services(server)
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    os.killpg(before["api"]["pid"], signal.SIGKILL)
    wait_until(lambda: not api_answers(server), message="the API to be gone")
    server.process = start_server(server.home, server.port, server.env)
    assert server.process.stdout is not None
    said = []
    while not said or "press Ctrl-C" not in said[-1]:
        said.append(server.process.stdout.readline())
    assert f"corral: adopted router (pid {before['router']['pid']})\n" in said
    assert any(line.startswith("corral: started api (pid ") for line in said), said
    assert said.index(next(line for line in said if "api (pid" in line)) < said.index(
        next(line for line in said if "router (pid" in line)
    )  # in the order the services are declared
    assert services(server)["api"]["restarts"] == 0
