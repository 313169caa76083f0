"""Real processes on loopback ports: a free port, an explicit environment, a slug's process
started as a dyno would be and reaped afterwards."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil

from corral.builder.slug import Slug
from corral.runtime.environ import process_environ
from support.wait import wait_for_http, wait_until

#: Ports handed out in this session: the kernel may offer a port again as soon as its probe
#: socket closes, before the process it was meant for binds it.
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now and this session has not handed out."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def base_environ(home: Path) -> dict[str, str]:
    """An environment built from nothing of the caller's: system PATH, HOME at ``home``."""
    return {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", os.defpath]),
        "HOME": str(home),
        "LANG": "C.UTF-8",
    }


def listening_ports(process: psutil.Process) -> set[int]:
    """The TCP ports ``process`` or any of its descendants listen on."""
    ports: set[int] = set()
    with suppress(psutil.NoSuchProcess):
        for proc in [process, *process.children(recursive=True)]:
            with suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                ports |= {
                    conn.laddr.port
                    for conn in proc.net_connections(kind="tcp")
                    if conn.status == psutil.CONN_LISTEN
                }
    return ports


def stop_group(process: subprocess.Popen, grace: float = 15) -> None:
    """SIGTERM the process group ``process`` leads, SIGKILL it after ``grace``, reap it."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class _PortTaken(Exception):
    """Something outside this session bound the port between the probe and the process."""


def _start_once(slug: Slug, name: str, scratch: Path) -> tuple[int, subprocess.Popen]:
    """Start ``name`` on a fresh port and return once it listens there."""
    port = free_port()
    env = process_environ(
        slug, base=base_environ(scratch), port=port, dyno=f"{name}.1", runtime_dir=scratch
    )
    process = subprocess.Popen(
        ["/bin/sh", "-c", slug.process_types[name]],
        cwd=slug.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    watched = psutil.Process(process.pid)

    def exited() -> None:
        if process.poll() is None:
            return
        output = process.stdout.read().decode() if process.stdout else ""
        if "in use" in output.lower():
            raise _PortTaken(output)
        raise AssertionError(f"{name} exited with {process.returncode}:\n{output}")

    try:
        wait_until(
            lambda: port in listening_ports(watched),
            timeout=60,
            interval=0.05,
            message=f"{name} to listen on port {port}",
            check=exited,
        )
    except BaseException:
        _stop_and_close(process)
        raise
    return port, process


def _stop_and_close(process: subprocess.Popen) -> None:
    stop_group(process)
    if process.stdout:
        process.stdout.close()


@contextmanager
def running_process(slug: Slug, name: str = "web") -> Iterator[tuple[int, subprocess.Popen]]:
    """Start one of the slug's process types on a free loopback port, as a dyno would, and
    yield once that process itself listens there (so a stranger on the port cannot answer)."""
    with tempfile.TemporaryDirectory(prefix="corral-dyno-") as scratch:
        for _ in range(2):
            try:
                port, process = _start_once(slug, name, Path(scratch))
                break
            except _PortTaken:
                continue  # once more, on another port
        else:
            port, process = _start_once(slug, name, Path(scratch))
        try:
            yield port, process
        finally:
            _stop_and_close(process)


def served_text(slug: Slug) -> str:
    """Start ``slug``'s web process as a dyno would and return the body of its 200 on /."""
    with running_process(slug) as (port, process):
        response = wait_for_http(f"http://127.0.0.1:{port}/", process=process)
        assert response.status_code == 200, response.text[:500]
        return response.text


def shims_logging_to(logs_dir: Path) -> list[psutil.Process]:
    """The dyno shims writing logs under ``logs_dir``: exec'd ones (``runtime/shim.py`` in
    their command line) and those the shim zygote forked (named ``shim NAME``, holding
    their dyno's log open)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "name"]):
        with suppress(psutil.Error):
            cmdline = " ".join(proc.info["cmdline"] or [])
            execd = "runtime/shim.py" in cmdline and str(logs_dir) in cmdline
            forked = (proc.info["name"] or "").startswith("shim ") and any(
                Path(f.path).is_relative_to(logs_dir) for f in proc.open_files()
            )
            if execd or forked:
                found.append(proc)
    return found
