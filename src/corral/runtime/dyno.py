"""One dyno as a process: start it under its shim, find it again, check its health, stop it.

A dyno is identified across restarts of the platform by its shim's pid *and* that
process's start time, so a pid the kernel has reused is never mistaken for a dyno.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil

from corral.runtime import shimfork
from corral.runtime.cgroups import Group, Limits


@dataclass(frozen=True)
class DynoSpec:
    """What to run: one process of one release of an app."""

    app: str
    name: str
    command: str
    cwd: Path
    env: Mapping[str, str]
    port: int | None = None
    #: The app's cgroup and the dyno's kernel limits, where the host has cgroups for corral.
    cgroup: str | None = None
    limits: Limits | None = None
    #: The file-creation mask it runs with: the usual for apps, private for the platform.
    umask: int = 0o022
    #: The uid and gid it runs as (its app's own user), or None: the platform's.
    user: tuple[int, int] | None = None

    @property
    def process_type(self) -> str:
        """``web`` for ``web.1``."""
        return self.name.rsplit(".", 1)[0]


@dataclass(frozen=True)
class DynoProcess:
    """A running dyno's shim: its pid and the start time that proves it is still the same."""

    pid: int
    started_at: float

    def alive(self) -> bool:
        """Whether the shim still runs (and the pid was not reused by something else)."""
        try:
            process = psutil.Process(self.pid)
            same = abs(process.create_time() - self.started_at) < 0.01
            return same and process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def memory(self) -> int:
        """Resident memory of the dyno's whole process tree, in bytes (0 when gone)."""
        return tree_memory([self.pid]).get(self.pid, 0)


class ShimChild(Protocol):
    """What the starter holds of a shim it started: a ``Popen`` (an exec'd shim, its
    child) or a :class:`~corral.runtime.shimfork.Forked` (the zygote's child)."""

    pid: int

    def poll(self) -> int | None:
        """None while the shim runs."""

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait until the shim has exited."""


@dataclass(frozen=True)
class Usage:
    """What a process tree uses: resident memory in bytes, CPU seconds since it started."""

    rss: int
    cpu: float


def tree_memory(roots: Iterable[int]) -> dict[int, int]:
    """Resident memory of each of ``roots``' whole process trees, in bytes."""
    return {pid: usage.rss for pid, usage in tree_usage(roots).items()}


def tree_usage(roots: Iterable[int]) -> dict[int, Usage]:
    """What each of ``roots``' whole process trees uses, from a single scan of the process
    table (one per call, however many roots: a scan per dyno costs milliseconds each, and
    the supervisor samples every dyno). Roots that are gone are left out."""
    wanted = set(roots)
    if not wanted:
        return {}
    children: dict[int, list[int]] = {}
    own: dict[int, Usage] = {}
    for proc in psutil.process_iter(["ppid", "memory_info", "cpu_times"]):
        info = proc.info
        if info["memory_info"] is None or info["cpu_times"] is None:  # gone, or not ours
            continue
        times = info["cpu_times"]
        own[proc.pid] = Usage(info["memory_info"].rss, times.user + times.system)
        children.setdefault(info["ppid"], []).append(proc.pid)
    totals = {}
    for root in wanted & own.keys():
        rss, cpu, stack = 0, 0.0, [root]
        while stack:
            pid = stack.pop()
            if pid in own:
                rss, cpu = rss + own[pid].rss, cpu + own[pid].cpu
            stack.extend(children.get(pid, ()))
        totals[root] = Usage(rss, cpu)
    return totals


def status_path(run_dir: Path, spec_app: str, dyno: str, pid: int) -> Path:
    """Where a dyno's shim records how the dyno ended."""
    return run_dir / "dynos" / spec_app / f"{dyno}.{pid}.status"


#: The shim, run as a file by the interpreter with neither site-packages nor corral on its
#: path (``-I -S``): it needs neither, and every dyno has one (see its docstring).
SHIM = str(Path(__file__).with_name("shim.py"))


def start(
    spec: DynoSpec, log_dir: Path, run_dir: Path, group: Group | None = None
) -> tuple[DynoProcess, ShimChild]:
    """Start ``spec`` under a shim in a session of its own (in ``group``, the dyno's cgroup,
    made by the caller with the spec's limits): forked by the home's zygote if one runs
    (:mod:`corral.runtime.shimfork`), else exec'd; the caller must reap what it returns."""
    (run_dir / "dynos" / spec.app).mkdir(parents=True, exist_ok=True)
    # The status file name needs the shim's pid, which is only known after the fork; the
    # shim is told a template and fills in its own pid.
    template = run_dir / "dynos" / spec.app / f"{spec.name}.{{pid}}.status"
    args = [
        "--log", str(log_dir),
        "--dyno", spec.name,
        "--status", str(template),
        "--umask", f"{spec.umask:03o}",
        *_confinement_args(spec, group),
        "--", "/bin/sh", "-c", spec.command,
    ]  # fmt: skip
    forked = shimfork.fork_shim(run_dir, args, spec.cwd, spec.env)
    if forked is not None:
        return DynoProcess(forked[0].pid, forked[1]), forked[0]
    process = subprocess.Popen(
        [sys.executable, "-I", "-S", SHIM, *args],
        cwd=spec.cwd,
        env=dict(spec.env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    return DynoProcess(process.pid, psutil.Process(process.pid).create_time()), process


def _confinement_args(spec: DynoSpec, group: Group | None) -> list[str]:
    args = ["--user", f"{spec.user[0]}:{spec.user[1]}"] if spec.user else []
    if group is None or spec.limits is None:
        return args
    for d in group.dirs:
        args += ["--cgroup-dir", str(d)]
    return [*args, "--oom-file", str(group.oom_file), "--memory", str(spec.limits.memory)]


def oom_killed(run_dir: Path, app: str, dyno: str, pid: int) -> bool:
    """Whether the shim recorded that the kernel's OOM killer stopped the dyno."""
    try:
        return bool(json.loads(status_path(run_dir, app, dyno, pid).read_text())["oom_killed"])
    except (FileNotFoundError, ValueError, KeyError):
        return False


def recorded_status(run_dir: Path, app: str, dyno: str, pid: int) -> int | None:
    """The exit status the shim recorded, or None if it recorded none (killed itself)."""
    path = status_path(run_dir, app, dyno, pid)
    try:
        return int(json.loads(path.read_text())["status"])
    except (FileNotFoundError, ValueError, KeyError):
        return None


def signal_group(dyno: DynoProcess, signum: int) -> None:
    """Send ``signum`` to the dyno's whole process group, if it is still the same process."""
    if dyno.alive():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(dyno.pid, signum)


def orphans(dyno: DynoProcess) -> list[int]:
    """The processes left in the group of a dyno whose shim is gone (none while it runs).

    The shim leads the group, so its pid is the group's id, and the kernel never hands
    out a pid still in use as a group id: a group with that id and no leader is the
    dyno's own. A live process with that pid that is not the shim is a reuse: not ours.
    """
    if not _zombie(dyno.pid):  # the shim itself, or a process that reused its pid
        return []
    found = []
    for pid in psutil.pids():
        with contextlib.suppress(OSError):
            if os.getpgid(pid) == dyno.pid and pid != dyno.pid and not _zombie(pid):
                found.append(pid)
    return found


def stop_orphans(dyno: DynoProcess) -> list[int]:
    """SIGKILL what is left of a dyno whose shim is gone (its output goes nowhere now and
    it may hold the dyno's port); returns the pids that were left."""
    left = orphans(dyno)
    if left:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(dyno.pid, signal.SIGKILL)
    return left


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def stop(dyno: DynoProcess, grace: float, popen: ShimChild | None = None) -> None:
    """SIGTERM the dyno's group, wait up to ``grace`` seconds, then SIGKILL it; whatever
    is left in its group once the shim is gone is killed too."""
    signal_group(dyno, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if popen is not None and popen.poll() is not None:
            break
        if popen is None and not dyno.alive():
            break
        await asyncio.sleep(0.05)
    else:
        signal_group(dyno, signal.SIGKILL)
        if popen is not None:
            await asyncio.to_thread(popen.wait)
    stop_orphans(dyno)


async def healthy(port: int, path: str | None = None, timeout: float = 1.0) -> bool:
    """Whether the dyno answers HTTP on ``port``: ``path`` with 2xx/3xx, else ``/`` below 500.

    Accepting TCP is not enough: gunicorn's master accepts before any worker has imported
    the app, so a dyno is up only once a worker has answered. Many apps answer ``/`` with
    404 or a redirect, which still proves the app is serving.
    """
    try:  # not wait_for, which can lose a cancellation that comes as the check ends
        async with asyncio.timeout(timeout):
            status = await _status_of_get(port, path or "/")
    except (OSError, TimeoutError, ValueError):
        return False
    return 200 <= status < 400 if path else 100 <= status < 500


async def _status_of_get(port: int, path: str) -> int:
    # A plain HTTP/1.0 GET read up to its status line: the supervisor's loop runs many of
    # these while dynos boot, and an HTTP client per check costs tens of ms of CPU.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: corral-health\r\n\r\n".encode()
        )
        await writer.drain()
        line = await reader.readline()
    finally:
        writer.close()
    version, _, rest = line.decode("latin-1").partition(" ")
    if not version.startswith("HTTP/"):
        raise ValueError("not an HTTP response")
    return int(rest[:3])
