"""A dyno never outlives its shim unnoticed: ``kill -9`` of the shim leaves nothing serving
that the supervisor does not know of, and stopping a dyno leaves nothing of it behind."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from pathlib import Path

import psutil
import pytest

from corral.runtime import dyno as dynos
from support.processes import base_environ, shims_logging_to
from support.server import Server, git, make_repo
from support.wait import wait_until


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _nothing_listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def _start(
    tmp_path: Path, command: str
) -> tuple[dynos.DynoProcess, subprocess.Popen, psutil.Process, psutil.Process]:
    spec = dynos.DynoSpec("hello", "worker.1", command, tmp_path, base_environ(tmp_path))
    process, popen = dynos.start(spec, tmp_path / "logs", tmp_path / "run")
    # the background child of the dyno, beside the process the shim waits for
    shim = psutil.Process(process.pid)

    def commands() -> dict[str, psutil.Process]:
        return {" ".join(p.cmdline()): p for p in shim.children(recursive=True)}

    wait_until(lambda: {"sleep 300", "sleep 301"} <= set(commands()), 10, message="the dyno")
    left, waited_for = commands()["sleep 300"], commands()["sleep 301"]
    return process, popen, left, waited_for


def test_the_group_a_killed_shim_left_is_found_and_stopped(tmp_path: Path) -> None:
    # `sleep 300` is the dyno's grandchild: the shim's death signal does not reach it
    process, popen, left, child = _start(tmp_path, "sleep 300 & exec sleep 301")
    assert dynos.orphans(process) == []  # the shim runs: nothing is orphaned
    os.kill(process.pid, signal.SIGKILL)
    popen.wait(10)
    # the shim's own child dies with it (its parent-death signal)
    wait_until(lambda: _gone(child.pid), 10, message="the shim's child to die with it")
    assert dynos.orphans(process) == [left.pid]
    assert dynos.stop_orphans(process) == [left.pid]
    wait_until(lambda: _gone(left.pid), 10, message="the orphan to be killed")
    assert dynos.orphans(process) == []


def test_stopping_a_dyno_leaves_nothing_of_its_group_behind(tmp_path: Path) -> None:
    # a child that ignores SIGTERM and no longer holds the shim's pipe: the shim exits first
    command = "(trap '' TERM; exec sleep 300 >/dev/null 2>&1) & exec sleep 301"
    process, popen, left, _ = _start(tmp_path, command)
    asyncio.run(dynos.stop(process, grace=5, popen=popen))
    wait_until(lambda: _gone(left.pid), 10, message="the dyno's last process to be stopped")


@pytest.mark.slow
def test_kill_9_of_a_shim_stops_its_gunicorn_and_one_web_1_serves(
    server: Server, tmp_path: Path
) -> None:
    server.api.post("/apps", json={"name": "shimless"}).raise_for_status()
    git(make_repo(tmp_path, server, "shimless"), "push", "corral", "main")
    [web] = server.api.get("/apps/shimless/dynos").json()
    served_by = psutil.Process(web["pid"]).children(recursive=True)  # gunicorn and its workers
    assert served_by
    os.kill(web["pid"], signal.SIGKILL)
    wait_until(
        lambda: all(_gone(p.pid) for p in served_by) and _nothing_listens(web["port"]),
        20,
        interval=0.1,
        message="the old gunicorn to be stopped",
    )

    def one_new_web() -> bool:
        dynos_now = server.api.get("/apps/shimless/dynos").json()
        return [(d["name"], d["state"]) for d in dynos_now] == [("web.1", "up")] and dynos_now[0][
            "pid"
        ] != web["pid"]

    wait_until(one_new_web, 30, interval=0.2, message="one new web.1 up")
    wait_until(lambda: server.app_get("shimless").text == "hello v1", 10, message="web.1 served")
    assert len(shims_logging_to(server.home / "logs" / "shimless")) == 1
