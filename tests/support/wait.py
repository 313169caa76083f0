"""Waiting for a condition with a deadline, instead of sleeping and hoping.

``wait_until`` polls until something holds and returns it; ``assert_stays`` is the honest
form of "sleep, then check nothing happened": it checks the whole window and fails at the
first violation.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

import httpx

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 20,
    *,
    interval: float = 0.02,
    message: str | Callable[[], str] = "",
    check: Callable[[], None] | None = None,
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Fails with ``message`` (a callable is called then, to describe the state at the end)
    once ``timeout`` seconds pass; ``check`` runs before each poll and may raise to fail
    early (a background loop that died, a process that exited).
    """
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            what = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def assert_stays(
    predicate: Callable[[], object],
    for_seconds: float,
    *,
    interval: float = 0.02,
    message: str = "",
) -> None:
    """Check that ``predicate`` holds throughout the next ``for_seconds``, failing at once
    if it stops holding (a bounded wait for "nothing happened", said out loud)."""
    deadline = time.monotonic() + for_seconds
    while True:
        assert predicate(), f"stopped holding: {message or predicate}"
        if time.monotonic() > deadline:
            return
        time.sleep(interval)


def wait_for_http(
    url: str, *, timeout: float = 30, process: subprocess.Popen | None = None
) -> httpx.Response:
    """GET ``url`` until it answers (any status); fails early if ``process`` exits first."""
    errors: list[Exception] = []

    def exited() -> None:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"process exited with {process.returncode} before {url} answered")

    def answer() -> httpx.Response | None:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError as exc:
            errors[:] = [exc]
            return None

    return wait_until(
        answer,
        timeout=timeout,
        interval=0.05,
        message=lambda: f"{url} to answer (last error: {errors})",
        check=exited,
    )
