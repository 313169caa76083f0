"""The shim zygote: dynos' shims forked from one small process per home, sharing its memory,
with every property of an exec'd shim kept, and the exec'd shim whenever no zygote answers."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from corral.runtime import dyno as dynos
from corral.runtime import shimfork
from corral.runtime.shimfork import Forked, ZygoteKeeper, socket_path
from support.processes import base_environ, shims_logging_to
from support.server import git, make_repo, running_server
from support.wait import wait_until

TICKS = "for i in $(seq 40); do echo tick $i; sleep 0.05; done"


@pytest.fixture
def keeper(tmp_path: Path) -> Iterator[ZygoteKeeper]:
    """A running zygote for a home under ``tmp_path``, stopped afterwards."""
    kept = ZygoteKeeper(tmp_path / "run")
    assert kept.ensure(wait=2)
    yield kept
    kept.stop()


def _zygote(keeper: ZygoteKeeper) -> psutil.Process:
    path = str(socket_path(keeper.run_dir))
    [found] = [
        p
        for p in psutil.process_iter(["cmdline", "name"])
        if path in (p.info["cmdline"] or []) and not p.info["name"].startswith("shim ")
    ]  # its forked shims have its command line too
    return found


def _spec(tmp_path: Path, command: str, name: str = "web.1") -> dynos.DynoSpec:
    return dynos.DynoSpec("hello", name, command, tmp_path, base_environ(tmp_path))


def _start(tmp_path: Path, command: str, name: str = "web.1") -> tuple[dynos.DynoProcess, object]:
    return dynos.start(_spec(tmp_path, command, name), tmp_path / "logs", tmp_path / "run")


def _app_lines(tmp_path: Path, name: str = "web.1") -> list[str]:
    log = tmp_path / "logs" / f"{name}.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line.split(": ", 1)[1] for line in lines if f" app[{name}]: " in line]


def _status(tmp_path: Path, process: dynos.DynoProcess, name: str = "web.1") -> int | None:
    return dynos.recorded_status(tmp_path / "run", "hello", name, process.pid)


def test_a_dyno_started_beside_a_zygote_gets_a_forked_shim_that_leads_its_session(
    tmp_path: Path, keeper: ZygoteKeeper
) -> None:
    gate = "while [ ! -e gate ]; do sleep 0.02; done"  # until the test has looked
    process, child = _start(tmp_path, f"echo hello $HOME from $(pwd); {gate}; exit 3")
    assert isinstance(child, Forked)
    shim = psutil.Process(process.pid)
    assert shim.ppid() == _zygote(keeper).pid
    assert os.getsid(process.pid) == process.pid  # signal_group and adoption need it
    assert shim.name() == "shim web.1"
    (tmp_path / "gate").touch()
    wait_until(lambda: _status(tmp_path, process) is not None, 10, message="a status")
    assert _status(tmp_path, process) == 3
    assert _app_lines(tmp_path) == [f"hello {tmp_path} from {tmp_path}"]
    assert child.wait(10) is not None and not process.alive()
    assert shims_logging_to(tmp_path / "logs") == []


def test_a_forked_shim_is_found_as_a_shim_and_stopped_through_its_group(
    tmp_path: Path, keeper: ZygoteKeeper
) -> None:
    process, child = _start(tmp_path, "echo up; exec sleep 300")
    wait_until(lambda: _app_lines(tmp_path) == ["up"], 10, message="the dyno's first line")
    assert [p.pid for p in shims_logging_to(tmp_path / "logs")] == [process.pid]
    asyncio.run(dynos.stop(process, grace=5, popen=child))  # type: ignore[arg-type]
    assert not process.alive()
    assert _status(tmp_path, process) == 128 + signal.SIGTERM
    log = (tmp_path / "logs" / "web.1.log").read_text()
    assert log.splitlines()[-1].endswith("corral[web.1]: Process exited with signal 15")


def test_a_forked_shim_loses_no_line_when_the_zygote_is_killed(
    tmp_path: Path, keeper: ZygoteKeeper
) -> None:
    process, _ = _start(tmp_path, TICKS)
    wait_until(lambda: _app_lines(tmp_path), 10, message="the first tick")
    _zygote(keeper).kill()  # as a kill -9 of the platform's processes would
    wait_until(lambda: _status(tmp_path, process) is not None, 20, message="the status")
    assert _app_lines(tmp_path) == [f"tick {i}" for i in range(1, 41)]
    assert _status(tmp_path, process) == 0


def test_a_dead_zygote_is_replaced_and_meanwhile_shims_are_execd(
    tmp_path: Path, keeper: ZygoteKeeper
) -> None:
    first = _zygote(keeper)
    first.kill()
    first.wait(10)
    process, child = _start(tmp_path, "exit 0", name="worker.1")  # no zygote answers
    assert isinstance(child, subprocess.Popen)
    assert "runtime/shim.py" in " ".join(psutil.Process(process.pid).cmdline())
    assert child.wait(10) == 0 and _status(tmp_path, process, "worker.1") == 0
    assert keeper.ensure(wait=2)
    assert _zygote(keeper).pid != first.pid
    _, forked = _start(tmp_path, "exit 0")
    assert isinstance(forked, Forked)


def test_forked_shims_share_the_zygotes_memory(tmp_path: Path, keeper: ZygoteKeeper) -> None:
    def private_kb(pid: int) -> int:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
        fields = {name: value.split()[0] for name, value in (x.split(":", 1) for x in rollup)}
        return int(fields["Private_Dirty"]) + int(fields["Private_Clean"])

    forked, forked_child = _start(tmp_path, "exec sleep 300", name="web.1")
    spec = _spec(tmp_path, "exec sleep 300", "web.2")
    execd, execd_child = dynos.start(spec, tmp_path / "logs", tmp_path / "elsewhere")  # no zygote
    assert isinstance(forked_child, Forked) and isinstance(execd_child, subprocess.Popen)
    try:
        for pid in (forked.pid, execd.pid):
            wait_until(psutil.Process(pid).children, 10, message="its dyno")
        assert private_kb(forked.pid) * 2 < private_kb(execd.pid)
    finally:
        for process, child in ((forked, forked_child), (execd, execd_child)):
            asyncio.run(dynos.stop(process, grace=5, popen=child))  # type: ignore[arg-type]


def test_the_zygote_leaves_when_stopped_or_when_its_socket_is_removed(tmp_path: Path) -> None:
    keeper = ZygoteKeeper(tmp_path / "run")
    assert keeper.ensure(wait=2)
    first = _zygote(keeper)
    keeper.stop()
    assert not first.is_running() or first.status() == psutil.STATUS_ZOMBIE
    assert not socket_path(keeper.run_dir).exists()
    assert keeper.ensure(wait=2)
    second = _zygote(keeper)
    socket_path(keeper.run_dir).unlink()
    wait_until(lambda: not second.is_running() or second.status() == psutil.STATUS_ZOMBIE, 10)
    keeper.stop()  # reaps it


def test_the_zygote_answers_no_other_user(tmp_path: Path, keeper: ZygoteKeeper) -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            raise AssertionError("CI runs the suite as root")
        pytest.skip("needs root, to try the socket as another user")
    code = (
        "import os, socket, sys\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        f"    s.connect({str(socket_path(keeper.run_dir))!r})\n"
        "except PermissionError:\n"
        "    sys.exit(0)\n"
        "sys.exit(1)\n"
    )
    assert subprocess.run(["python3", "-c", code], timeout=30).returncode == 0
    assert oct(socket_path(keeper.run_dir).stat().st_mode & 0o777) == "0o600"


def test_a_bad_request_costs_the_client_its_connection_not_the_zygote(
    tmp_path: Path, keeper: ZygoteKeeper
) -> None:
    from corral.runtime import zygote

    where = zygote.address(str(socket_path(keeper.run_dir)))
    try:
        for payload in (b"not json", b"[]", json.dumps({"argv": 3}).encode(), b""):
            with socket.socket(socket.AF_UNIX) as conn:
                conn.settimeout(10)
                conn.connect(where)
                conn.sendall(payload)
                conn.shutdown(socket.SHUT_WR)
                assert conn.recv(100) == b""
    finally:
        zygote.close_address(where)
    _, forked = _start(tmp_path, "exit 0")
    assert isinstance(forked, Forked)


def test_a_shim_that_cannot_be_tracked_is_killed_and_the_dyno_starts_execd(
    tmp_path: Path, keeper: ZygoteKeeper, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_pidfd(pid: int) -> int:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(shimfork.os, "pidfd_open", no_pidfd)
    process, child = _start(tmp_path, "echo up $$; exec sleep 300")
    try:
        assert isinstance(child, subprocess.Popen)  # the exec'd shim, after the forked one
        wait_until(
            lambda: [p.pid for p in shims_logging_to(tmp_path / "logs")] == [process.pid],
            10,
            message="the forked shim killed, only the exec'd one left",
        )
        assert _zygote(keeper).children() == []
    finally:
        asyncio.run(dynos.stop(process, grace=5, popen=child))  # type: ignore[arg-type]


def test_a_client_that_hangs_up_before_tracking_its_shim_leaves_no_dyno(
    tmp_path: Path, keeper: ZygoteKeeper
) -> None:
    from corral.runtime import zygote

    request = {
        "argv": ["--log", str(tmp_path / "logs"), "--dyno", "web.1", "--status",
                 str(tmp_path / "s.{pid}"), "--umask", "077", "--", "sleep", "300"],
        "cwd": str(tmp_path),
        "env": base_environ(tmp_path),
    }  # fmt: skip
    where = zygote.address(str(socket_path(keeper.run_dir)))
    try:
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(10)
            conn.connect(where)
            conn.sendall(json.dumps(request).encode() + b"\n")
            pid = int(conn.recv(100))
            shim = psutil.Process(pid)
            assert shim.name() == "shim web.1"
    finally:
        zygote.close_address(where)
    wait_until(lambda: not shim.is_running(), 10, message="the zygote to kill the shim")
    assert _zygote(keeper).children() == []
    assert shims_logging_to(tmp_path / "logs") == []


SLOW_BOOT = """import os, time
from flask import Flask
if os.environ.get("SLOW_BOOT"):
    time.sleep(120)  # a release that boots for longer than the test
app = Flask(__name__)

@app.get("/")
def index():
    return "hello {version}"
"""


def test_a_server_stopped_while_a_rollout_boots_leaves_no_process(
    tmp_path: Path, corral_home: Path
) -> None:
    with running_server(tmp_path, corral_home) as server:  # fails if a process is left
        server.api.post("/apps", json={"name": "slow"}).raise_for_status()
        repo = make_repo(tmp_path, server, "slow", source=SLOW_BOOT)
        git(repo, "push", "corral", "main")
        assert server.app_get("slow").text == "hello v1"
        server.api.patch("/apps/slow/config", json={"SLOW_BOOT": "1"}).raise_for_status()
        booting = server.home / "run" / "booting" / "slow.json"
        wait_until(
            lambda: booting.exists() and json.loads(booting.read_text()), 30,
            message="the new release's web.1 booting",
        )  # fmt: skip
        [entry] = json.loads(booting.read_text())
        shim = psutil.Process(entry["pid"])
        assert shim.name() == "shim web.1"  # forked by the zygote
        wait_until(shim.children, 10, message="its dyno under it")
    assert not shim.is_running()
