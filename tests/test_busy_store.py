"""A busy store (another process holding its write lock for seconds) never takes the
platform down: reads go on, writes answer 503 with one sentence, the supervisor waits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from corral.runtime.busy import Backoff, StoreWrites
from corral.store import Store, StoreBusy
from support.cli import corral
from support.server import Server, git, make_repo
from support.wait import wait_until

BUSY = "The store is busy; try again in a moment."

#: Holds BEGIN IMMEDIATE on a store file for argv[2] seconds, from a process of its own.
_HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


@contextmanager
def store_locked(path: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """The store at ``path`` write-locked by another process for ``seconds`` from now."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_a_read_does_not_queue_behind_a_write_waiting_for_the_lock(tmp_path: Path) -> None:
    with Store.open(tmp_path / "corral.db", busy_timeout=3) as store:
        store.create_app("early")
        errors: list[BaseException] = []

        def write() -> None:
            try:
                store.create_app("late")
            except BaseException as exc:
                errors.append(exc)

        with store_locked(store.path, 10):
            writer = threading.Thread(target=write)
            writer.start()

            # reads go on while it waits (the lock keeps it 3 s): none takes long
            until = time.monotonic() + 1.5
            while time.monotonic() < until:
                started = time.monotonic()
                assert [app.name for app in store.list_apps()] == ["early"]
                assert time.monotonic() - started < 0.5, "a read queued behind the write"
            assert writer.is_alive()
            writer.join(10)
        assert len(errors) == 1 and isinstance(errors[0], StoreBusy)
        assert errors[0].message == BUSY
        assert "late" not in [app.name for app in store.list_apps()]


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_busy_writes_wait_in_order_and_each_episode_is_logged_once() -> None:
    clock, lines, done = _Clock(), [], []
    busy = [True]
    writes = StoreWrites(lines.append, backoff=Backoff(first=1, longest=4), clock=clock)

    def write(what: str) -> None:
        if busy[0]:
            raise StoreBusy()
        done.append(what)

    writes.defer("web.1", write, "web.1 starting")
    writes.defer("web.2", write, "web.2 up")
    writes.defer("web.1", write, "web.1 up")  # replaces the first in its place
    assert writes.attempt(lambda: write("requests")) is None  # backing off: not even tried
    clock.now += 0.5
    writes.flush()
    clock.now += 1
    writes.flush()  # tried again, refused again: the wait doubles, no second line
    assert lines == ["The store is busy (another process holds its write lock); retrying"]
    busy[0] = False
    clock.now += 1
    assert not writes.flush() and done == []  # still within the doubled wait
    clock.now += 1.5
    assert writes.flush() and done == ["web.1 up", "web.2 up"]
    assert lines[1] == "The store answers again after 4.0s"
    assert writes.attempt(lambda: "taken") == "taken"


def _holder_log(home: Path) -> str:
    return "".join(p.read_text() for p in (home / "logs" / "corral").glob("*.log"))


@pytest.mark.slow
@pytest.mark.parametrize("then", ["seen live", "stopped at once"])
def test_a_store_locked_for_seconds_never_stops_the_platform(
    server: Server, tmp_path, then: str
) -> None:
    server.api.post("/apps", json={"name": "steady"}).raise_for_status()
    repo = make_repo(tmp_path, server, "steady")
    git(repo, "push", "corral", "main")
    [web] = server.api.get("/apps/steady/dynos").json()
    dyno = psutil.Process(web["pid"]).children(recursive=True)  # under its shim
    written: list[httpx.Response] = []
    with store_locked(server.home / "corral.db", 8):
        locked = time.monotonic()
        # writes made now wait for the lock (5 s), then give up with one sentence
        api_write = threading.Thread(
            target=lambda: written.append(server.api.patch("/apps/steady/config", json={"A": "1"}))
        )
        api_write.start()
        cli_write = subprocess.Popen(
            [sys.executable, "-m", "corral", "config:set", "B=2", "-a", "steady"],
            env=server.env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for process in dyno:  # the dyno crashes while the store is locked
            os.kill(process.pid, signal.SIGKILL)
        apps = corral("apps", env=server.env, cwd=tmp_path, timeout=30)
        assert apps.returncode == 0 and "steady" in apps.stdout, apps.stderr
        assert time.monotonic() - locked < 4, "a read waited for the lock"
        api_write.join(30)
        _, err = cli_write.communicate(timeout=30)
        assert time.monotonic() - locked < 8, "the writes waited past their timeout"
    [answer] = written
    assert answer.status_code == 503
    assert answer.json()["message"] == BUSY
    assert answer.headers["Retry-After"] == "2"
    assert cli_write.returncode == 1 and BUSY in err and "Traceback" not in err, err
    assert server.process.poll() is None, "corral server died of a busy store"
    wait_until(
        lambda: (
            [
                (d["name"], d["state"])
                for d in server.api.get("/apps/steady/dynos").json()
                if d["pid"] != web["pid"]
            ]
            == [("web.1", "up")]
        ),
        30,
        interval=0.2,
        message="web.1 to be restarted after the lock",
    )
    assert server.app_get("steady").text == "hello v1"
    log = _holder_log(server.home)
    assert log.count("corral[supervisor]: The store is busy") == 1, log
    assert "corral[supervisor]: The store answers again after" in log
    assert server.api.patch("/apps/steady/config", json={"A": "1"}).status_code == 200
    if then == "stopped at once":  # mid-rollout: the teardown finds nothing left running
        return
    # that change rolls out: seen through as a user's config:set would, before the platform stops
    wait_until(
        lambda: server.api.get("/apps/steady/releases").json()[-1]["status"] == "succeeded",
        30,
        interval=0.2,
        message="the config change's release to go live",
    )
