"""One-off dynos as Heroku users know them: `corral run` (interactive, over a WebSocket
through the router), `run:detached`, `ps` listing one-offs and `ps:kill`."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import psutil
import pytest
from flask import Flask
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request

from corral import wire
from support.server import Server, git, make_repo
from support.terminal import Terminal
from support.wait import wait_until


def corral(
    server: Server, *args: str, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real CLI, as the server's own user, to completion."""
    return subprocess.run(
        [sys.executable, "-m", "corral", *args],
        env=env or server.env, input=input, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def deployed(server: Server, tmp_path: Path) -> str:
    """An app with one release, served."""
    server.api.post("/apps", json={"name": "shell"}).raise_for_status()
    push = git(make_repo(tmp_path, server, "shell"), "push", "corral", "main")
    assert "Released v1" in push.stderr, push.stderr
    return "shell"


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_run_bash_is_interactive_under_a_pty(server: Server, deployed: str) -> None:
    term = Terminal("run", "-a", deployed, "--", "bash", env=server.env, size=(30, 100))
    try:
        term.expect("run.")  # "Running `bash` on shell... up, run.1234"
        term.send(b"stty size; tty; echo $DYNO\r")
        shown = term.expect("30 100")
        assert "/dev/pts/" in term.expect("/dev/pts/")
        # the window size follows the caller's terminal
        term.resize(40, 120)
        term.process.send_signal(signal.SIGWINCH)  # a terminal sends it to its foreground job
        term.send(b"stty size\r")
        term.expect("40 120")
        # Ctrl-C reaches the remote process group, not the CLI
        term.send(b"echo sl''eeping; sleep 100\r")
        term.expect("sleeping")
        term.send(b"\x03")
        term.send(b"echo interrupted-$?\r")
        term.expect("interrupted-130")
        term.send(b"echo hi; exit 3\r")
        assert term.wait() == 3
        assert re.search(r"run\.\d{4}", shown)
        assert "hi" in term.output.decode()
    finally:
        term.close()


def test_ctrl_c_and_ctrl_d_reach_a_one_off(server: Server, deployed: str) -> None:
    sleeper = Terminal("run", "-a", deployed, "--", "sleep", "100", env=server.env, size=(24, 80))
    try:
        sleeper.expect("run.")
        sleeper.send(b"\x03")
        assert sleeper.wait() == 130  # as a shell reports SIGINT
    finally:
        sleeper.close()
    reader = Terminal(
        "run", "-a", deployed, "--", "python", "-c",
        "import sys; print('got', len(sys.stdin.read()))", env=server.env, size=(24, 80),
    )  # fmt: skip
    try:
        reader.expect("run.")
        reader.send(b"abc\r")
        reader.send(b"\x04")  # Ctrl-D: end of input
        assert reader.wait() == 0
        assert "got 4" in reader.output.decode()
    finally:
        reader.close()


def test_stdin_is_piped_and_streams_stay_apart(server: Server, deployed: str) -> None:
    echo = corral(
        server, "run", "-a", deployed, "--", "python", "-c", "print(input())", input="x\n"
    )
    assert (echo.returncode, echo.stdout) == (0, "x\n"), echo.stderr
    both = corral(
        server, "run", "-a", deployed, "--", "python", "-c",
        "import sys; print('out'); print('err', file=sys.stderr); sys.exit(4)",
    )  # fmt: skip
    assert (both.returncode, both.stdout, both.stderr) == (4, "out\n", "err\n")
    # a shell command line as one argument, as Heroku runs it
    line = corral(server, "run", "-a", deployed, "echo $DYNO; exit 5")
    assert line.returncode == 5 and re.fullmatch(r"run\.\d{4}\n", line.stdout), line
    options = corral(
        server, "run", "-a", deployed, "python", "-c", "import sys; print(sys.argv[1:])",
        "--app", "app", "routes",
    )  # fmt: skip
    assert options.stdout == "['--app', 'app', 'routes']\n", options.stderr
    big = "".join(f"line {i}\n" for i in range(100_000))  # more than any pipe holds
    cat = corral(server, "run", "-a", deployed, "--", "cat", input=big)
    assert cat.returncode == 0 and cat.stdout == big


def test_ctrl_c_without_a_terminal_and_a_client_that_goes_away(
    server: Server, deployed: str
) -> None:
    script = "import os, time; print(os.getpid(), flush=True); time.sleep(100)"
    command = [sys.executable, "-m", "corral", "run", "-a", deployed, "--", "python", "-c"]
    interrupted = subprocess.Popen(
        [*command, script], env=server.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert interrupted.stdout is not None
    remote = int(interrupted.stdout.readline())
    # listed by `ps` while it runs, as a one-off
    listed = corral(server, "ps", "-a", deployed)
    assert re.search(r"run\.\d{4}", listed.stdout), listed.stdout
    interrupted.send_signal(signal.SIGINT)
    assert interrupted.wait(timeout=30) == 130
    assert wait_until(lambda: _gone(remote), 10, message="the interrupted one-off still runs")

    abandoned = subprocess.Popen(
        [*command, script], env=server.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert abandoned.stdout is not None
    remote = int(abandoned.stdout.readline())
    abandoned.kill()  # the client goes away without a word: so does the one-off
    abandoned.wait()
    wait_until(lambda: _gone(remote), 10, message="the one-off outlived its client")
    wait_until(
        lambda: "run." not in corral(server, "ps", "-a", deployed).stdout,
        10,
        message="ps still lists the ended one-off",
    )


def test_run_detached_logs_ps_and_ps_kill(server: Server, deployed: str) -> None:
    started = corral(
        server, "run:detached", "-a", deployed, "--", "python", "-c",
        "import time; print('from detached', flush=True); time.sleep(100)",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    dyno = re.search(r"up, (run\.\d{4})", started.stdout)
    assert dyno, started.stdout
    name = dyno.group(1)
    wait_until(
        lambda: f"app[{name}]: from detached" in corral(server, "logs", "-a", deployed).stdout,
        20,
        message="the detached one-off's output never reached the logs",
    )
    listed = corral(server, "ps", "-a", deployed)
    assert name in listed.stdout and "web.1" in listed.stdout, listed.stdout
    killed = corral(server, "ps:kill", name, "-a", deployed)
    assert killed.returncode == 0, killed.stderr
    wait_until(
        lambda: name not in corral(server, "ps", "-a", deployed).stdout,
        20,
        message="ps:kill never stopped the one-off",
    )
    wait_until(
        lambda: f"{name}]: Process exited" in corral(server, "logs", "-a", deployed).stdout,
        10,
        message="the one-off's end was not logged",
    )
    # left running: a clean stop of the server stops it too (the fixture fails on any
    # process the server leaves behind)
    left = corral(server, "run:detached", "-a", deployed, "sleep 100")
    assert left.returncode == 0 and "up, run." in left.stdout, left.stderr


def test_bad_one_off_requests_are_refused_in_one_sentence(
    server: Server, deployed: str, tmp_path: Path
) -> None:
    formation = corral(server, "ps:kill", "web.1", "-a", deployed)
    assert formation.returncode == 1
    assert "web.1 is not a one-off dyno" in formation.stderr and "ps:stop" in formation.stderr
    unknown = corral(server, "ps:kill", "run.9999", "-a", deployed)
    assert unknown.returncode == 1
    assert "no running one-off dyno named run.9999" in unknown.stderr
    missing = corral(server, "run", "-a", deployed, "--", "no-such-program")
    assert missing.returncode == 127, missing
    assert missing.stderr == "no-such-program: No such file or directory\n"
    term = Terminal("run", "-a", deployed, "no-such-program", env=server.env, size=(24, 80))
    try:  # under a pty, the same, as the command's own output
        assert term.wait() == 127
        assert "no-such-program: No such file or directory" in term.output.decode()
    finally:
        term.close()
    nothing = corral(server, "run", "-a", deployed)
    assert nothing.returncode == 2 and "Missing argument" in nothing.stderr
    marker = tmp_path / "ran"
    wrong = corral(
        server, "run", "-a", deployed, "--", "touch", str(marker),
        env={**server.env, "CORRAL_TOKEN": "wrong", "CORRAL_SERVER": f"http://localhost:{server.port}"},
    )  # fmt: skip
    assert wrong.returncode == 1 and "refused the token" in wrong.stderr, wrong.stderr
    assert not marker.exists()
    server.api.post("/apps", json={"name": "empty"}).raise_for_status()
    undeployed = corral(server, "run", "-a", "empty", "--", "bash")
    assert undeployed.returncode == 1 and "no release yet" in undeployed.stderr
    for result in (formation, unknown, nothing, wrong, undeployed):
        assert "Traceback" not in result.stderr


def test_a_wrong_token_is_refused_before_the_upgrade(server: Server, deployed: str) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"GET /api/v1/apps/shell/run HTTP/1.1\r\nHost: localhost\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer wrong\r\n"
            b'Corral-Run: {"command": ["bash"]}\r\n\r\n'
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 401")


def test_the_run_route_checks_everything_before_the_upgrade(app: Flask, secret: str) -> None:
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade"}
    plain = client.get("/api/v1/apps/quiet/run")
    assert plain.status_code == 400 and "is a WebSocket" in plain.get_json()["message"]
    bare = client.get("/api/v1/apps/quiet/run", headers=upgrade)
    assert bare.status_code == 400 and "Corral-Run header" in bare.get_json()["message"]
    empty = client.get(
        "/api/v1/apps/quiet/run", headers={**upgrade, "Corral-Run": '{"command": []}'}
    )
    assert empty.status_code == 400 and "non-empty list" in empty.get_json()["message"]
    ls = {**upgrade, "Corral-Run": '{"command": ["ls"]}'}
    assert client.get("/api/v1/apps/quiet/run", headers=ls).status_code == 404
    client.post("/api/v1/apps", json={"name": "quiet"})
    undeployed = client.get("/api/v1/apps/quiet/run", headers=ls)
    assert "no release yet" in undeployed.get_json()["message"]
    assert client.post("/api/v1/apps/quiet/one-offs", json={"command": "ls"}).status_code == 400
    assert client.delete("/api/v1/apps/quiet/one-offs/run.1").status_code == 404


def _open_session(server: Server, app: str, command: list[str]) -> socket.socket:
    """A `corral run` WebSocket through the router, once the API has accepted it."""
    ws = WSConnection(ConnectionType.CLIENT)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    headers = [
        (b"authorization", f"Bearer {server.token}".encode()),
        (wire.START_HEADER.encode(), json.dumps({"command": command}).encode()),
    ]
    target = f"/api/v1/apps/{app}/run"
    sock.sendall(ws.send(Request(host="localhost", target=target, extra_headers=headers)))
    while True:
        data = sock.recv(65536)
        assert data, "the server closed the session before accepting it"
        ws.receive_data(data)
        if any(isinstance(event, AcceptConnection) for event in ws.events()):
            return sock


def test_open_sessions_leave_the_api_answering(server: Server, deployed: str) -> None:
    with ExitStack() as stack:
        for _ in range(20):  # more than the API's 2 workers x 8 threads
            stack.enter_context(_open_session(server, deployed, ["sleep", "60"]))
        started = time.monotonic()
        assert server.api.get("/apps").status_code == 200
        assert time.monotonic() - started < 1.0
        wait_until(
            lambda: len(server.api.get(f"/apps/{deployed}/one-offs").json()) == 20,
            message="20 one-offs running",
        )
    # the clients went away: so do their one-offs
    wait_until(
        lambda: server.api.get(f"/apps/{deployed}/one-offs").json() == [],
        20,
        message="the one-offs of the closed sessions to end",
    )
