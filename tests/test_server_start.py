"""Starting `corral server`: one platform per home, and a start that fails changes nothing.

A refused or failed start exits non-zero with one sentence, leaves no process of its home
running, and never touches the credentials file (which holds another home's token here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from support.cli import corral
from support.nginx import require_nginx
from support.processes import free_port
from support.server import Server, platform_pids, start_server
from support.wait import wait_until

pytestmark = pytest.mark.slow

#: A gunicorn configuration (read from the API's working directory, the home) whose workers
#: never serve: a real way for the platform to start and not answer.
NEVER_SERVES = "import time\n\ndef post_worker_init(worker):\n    time.sleep(600)\n"

#: What the credentials file holds before each start below: another home's login.
SAVED = {"server": "http://localhost:1", "token": "corral_other_home"}


def start(
    home: Path, tmp_path: Path, *flags: str, port: int | None = None
) -> subprocess.CompletedProcess[str]:
    """`corral server` on ``home`` (a fresh port unless given), expected to end on its own."""
    credentials = tmp_path / "saved-credentials.json"
    credentials.write_text(json.dumps(SAVED))
    env = {**os.environ, "CORRAL_CREDENTIALS": str(credentials)}
    env.pop("CORRAL_HOME", None)
    bind = ["--bind", f"127.0.0.1:{port or free_port()}"]
    flags = ("--no-isolation", *flags)
    return corral("server", "--home", str(home), *bind, *flags, env=env, timeout=90)


def assert_changed_nothing(home: Path, tmp_path: Path, result) -> None:
    """The start failed as a user should see it, and left nothing behind."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert_left_nothing(home, tmp_path)


def assert_left_nothing(home: Path, tmp_path: Path) -> None:
    """No credentials or token written, and no process of ``home`` running."""
    assert json.loads((tmp_path / "saved-credentials.json").read_text()) == SAVED
    assert not (home / "admin-token").exists()
    # stopped processes may take a moment to be reaped; one left running never goes
    wait_until(lambda: not platform_pids(home), timeout=10, message="no process of the home")


def services(server: Server) -> dict[str, int]:
    listed = corral("ps", "--platform", "--json", env=server.env, timeout=60)
    assert listed.returncode == 0, listed.stderr
    return {entry["name"]: entry["pid"] for entry in json.loads(listed.stdout)}


def test_a_second_server_on_the_same_home_is_refused(server: Server, tmp_path) -> None:
    before = services(server)
    result = start(server.home, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip() == (
        f"error: corral server is already running for this home (pid {server.process.pid}, "
        f"http://localhost:{server.port}); stop it first or pass another --home."
    )
    assert result.stdout == ""
    # the first one is untouched: same services, still serving (the fixture then checks
    # that it stops cleanly, leaving no process behind)
    assert services(server) == before
    assert httpx.get(f"http://localhost:{server.port}/api/v1/health").status_code == 200


def test_the_lock_dies_with_its_server(server: Server, tmp_path) -> None:
    server.process.kill()  # kill -9: no chance to release anything
    server.process.wait()
    server.process = start_server(server.home, server.port, server.env)
    # the old services answer at once: the new server's word is its last line
    assert server.process.stdout is not None
    said = [server.process.stdout.readline()]
    while said[-1] and "press Ctrl-C" not in said[-1]:
        said.append(server.process.stdout.readline())
    assert "corral: press Ctrl-C to stop\n" in said, said
    lock = json.loads((server.home / "run" / "server.lock").read_text())
    assert lock == {"pid": server.process.pid, "url": f"http://localhost:{server.port}"}


def test_a_restart_on_another_port_than_the_adopted_router_is_refused(
    server: Server, tmp_path
) -> None:
    router = services(server)["router"]
    server.process.kill()
    server.process.wait()
    port = free_port()
    result = corral(
        "server", "--home", str(server.home), "--bind", f"127.0.0.1:{port}", "--no-isolation",
        env=server.env, timeout=90,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip() == (
        f"error: The router the last corral server left running (pid {router}) does not "
        f"listen on 127.0.0.1:{port}; pass the --bind it was started with, or stop it first."
    )
    assert "Traceback" not in result.stderr
    # the apps' and the API's processes were left as they were: the old port still serves
    assert httpx.get(f"http://localhost:{server.port}/api/v1/health").status_code == 200
    server.process = start_server(server.home, server.port, server.env)  # for the teardown


def test_a_port_in_use_by_another_home_changes_nothing(server: Server, tmp_path) -> None:
    home = tmp_path / "second-home"
    result = start(home, tmp_path, port=server.port)
    assert result.stderr.strip() == (
        f"error: Cannot listen on 127.0.0.1:{server.port} (Address already in use); "
        "stop what uses it or pass --bind HOST:PORT."
    )
    assert_changed_nothing(home, tmp_path, result)
    assert httpx.get(f"http://localhost:{server.port}/api/v1/health").status_code == 200


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (("--bind", "nowhere"), "--bind 'nowhere' is not HOST:PORT"),
        (("--boot-timeout", "0"), "--boot-timeout is 0; pass a number of seconds above 0."),
        (("--grace", "-1"), "--grace is -1; pass a number of seconds above 0."),
    ],
)
def test_a_bad_flag_changes_nothing(tmp_path, flags: tuple[str, ...], said: str) -> None:
    home = tmp_path / "home"
    result = start(home, tmp_path, *flags)  # the last --bind is the one that counts
    assert said in result.stderr
    assert_changed_nothing(home, tmp_path, result)
    assert not home.exists()


def test_an_unwritable_home_is_refused(tmp_path) -> None:
    (tmp_path / "a-file").write_text("not a directory\n")
    home = tmp_path / "a-file" / "home"
    result = start(home, tmp_path)
    assert result.stderr.strip() == (
        f"error: Cannot write to corral's home {home} (Not a directory); "
        "pass --home a directory you can write to."
    )
    assert_changed_nothing(home, tmp_path, result)


def test_an_api_that_exits_at_start_is_reported_and_stopped(tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # gunicorn reads gunicorn.conf.py from its working directory, the home: a real way
    # for the API to fail before it serves
    (home / "gunicorn.conf.py").write_text('raise SystemExit("this config is broken")\n')
    result = start(home, tmp_path)
    assert result.stderr.startswith(
        "error: The platform could not start: its api service exited before it served; "
        "fix what its last lines say and start again.\n"
    ), result.stderr
    assert "app[api]: this config is broken" in result.stderr
    assert_changed_nothing(home, tmp_path, result)

    (home / "gunicorn.conf.py").unlink()  # fixed: the next start serves and writes the token
    port = free_port()
    env = {**os.environ, "CORRAL_CREDENTIALS": str(tmp_path / "saved-credentials.json")}
    env.pop("CORRAL_HOME", None)
    process = start_server(home, port, env)
    try:
        token = (home / "admin-token").read_text().strip()
        saved_now = json.loads((tmp_path / "saved-credentials.json").read_text())
        assert saved_now == {"server": f"http://localhost:{port}", "token": token}
        answer = httpx.get(
            f"http://localhost:{port}/api/v1/apps", headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=60)
    wait_until(lambda: not platform_pids(home), timeout=20, message="the server to stop")


def test_a_platform_that_never_answers_times_out_and_is_stopped(tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "gunicorn.conf.py").write_text(NEVER_SERVES)
    result = start(home, tmp_path, "--boot-timeout", "3")
    assert "error: The platform did not answer at http://127.0.0.1:" in result.stderr
    assert "within 3s; fix what its last lines say, or pass a longer --boot-timeout." in (
        result.stderr
    )
    assert_changed_nothing(home, tmp_path, result)


def test_a_stop_while_starting_stops_everything_and_writes_no_token(tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "gunicorn.conf.py").write_text(NEVER_SERVES)
    credentials = tmp_path / "saved-credentials.json"
    credentials.write_text(json.dumps(SAVED))
    env = {**os.environ, "CORRAL_CREDENTIALS": str(credentials)}
    env.pop("CORRAL_HOME", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "corral", "server", "--home", str(home),
         "--bind", f"127.0.0.1:{free_port()}", "--no-isolation"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    said = [process.stdout.readline() for _ in ("api", "streams", "router")]
    assert said[2].startswith("corral: started router (pid "), said
    process.terminate()
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert out == "corral: stopped\n" and err == ""
    assert_left_nothing(home, tmp_path)


def test_router_nginx_without_nginx_says_which_package_and_starts_nothing(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("CORRAL_NGINX", str(tmp_path / "no-nginx-here"))
    home = tmp_path / "home"
    result = start(home, tmp_path, "--router", "nginx")
    assert result.stderr.strip() == (
        "error: --router nginx needs nginx, which is not installed: install Debian's nginx "
        "package (apt-get install nginx), or leave out --router."
    )
    assert_changed_nothing(home, tmp_path, result)


def test_a_restart_with_the_other_router_than_the_adopted_one_is_refused(
    server: Server, tmp_path
) -> None:
    require_nginx()
    router = services(server)["router"]
    server.process.kill()
    server.process.wait()
    result = corral(
        "server", "--home", str(server.home), "--bind", f"127.0.0.1:{server.port}",
        "--no-isolation", "--router", "nginx", env=server.env, timeout=90,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.strip() == (
        f"error: The router the last corral server left running (pid {router}) is the "
        "embedded one; pass --router embedded as it was started, or stop it first."
    )
    assert httpx.get(f"http://localhost:{server.port}/api/v1/health").status_code == 200
    server.process = start_server(server.home, server.port, server.env)  # for the teardown
