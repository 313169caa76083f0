"""Fixtures shared by the suite: a warm corral home, the CLI, free ports, HTTP polling."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from corral.builder.slug import Slug
from corral.runtime.environ import process_environ

pytest_plugins = ["dashboard_support", "server_support"]


@pytest.fixture(scope="session")
def corral_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One corral home for the session, so the installer cache stays warm between tests."""
    return tmp_path_factory.mktemp("corral-home")


def run_corral(
    *args: str, home: Path | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the real ``corral`` CLI in a subprocess and capture what a user would see."""
    env = dict(os.environ)
    if home is not None:
        env["CORRAL_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "corral", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], object], timeout: float = 20, what: str = "") -> None:
    """Poll ``condition`` until it holds or the deadline passes (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)


def wait_for_http(url: str, *, timeout: float = 30, process: subprocess.Popen | None = None):
    """Poll ``url`` until it answers (any status) or the deadline passes."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"process exited with {process.returncode} before {url} answered")
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError as exc:
            last_error = exc
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer within {timeout}s: {last_error}")


@contextmanager
def running_process(slug: Slug, name: str = "web") -> Iterator[tuple[int, subprocess.Popen]]:
    """Start one of the slug's process types on a free loopback port, as a dyno would."""
    port = free_port()
    env = process_environ(slug, base=os.environ, port=port, dyno=f"{name}.1")
    process = subprocess.Popen(
        ["/bin/sh", "-c", slug.process_types[name]],
        cwd=slug.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield port, process
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if process.stdout:
            process.stdout.close()
