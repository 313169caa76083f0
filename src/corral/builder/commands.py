"""How the builder runs commands: their environment, as whom, their output streamed.

Installers, tools and hooks all run through :func:`run_streaming`; as an app's user
(``run_as``) each runs in a session of its own, with only a few of the host's variables,
the user's own HOME, TMPDIR and cache.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uv import find_uv_bin

from corral.appusers import AppUser
from corral.builder.inputs import STEERING
from corral.builder.log import BuildLog
from corral.config import Settings
from corral.errors import BuildError


def uv_bin() -> str:
    """The uv executable installed alongside corral."""
    return find_uv_bin()


#: What of the platform's own environment an isolated build's commands see.
_HOST_KEPT = ("PATH", "LANG", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")
_HOST_PREFIXES = ("LC_", *STEERING, "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy",
                       "https_proxy", "no_proxy")  # fmt: skip


def fixed_environ(settings: Settings, run_as: AppUser | None = None) -> dict[str, str]:
    """What corral sets for installers whatever the app's config says.

    An isolated build's cache is the app's own: a shared one would let one app's
    ``setup.py`` plant a package another app's build then installs.
    """
    cache = settings.cache_dir if run_as is None else run_as.cache
    isolated = {} if run_as is None else {"UV_LINK_MODE": "copy"}  # no links into its cache
    return {
        **isolated,
        "UV_CACHE_DIR": str(cache / "uv"),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
        "PIP_CACHE_DIR": str(cache / "pip"),
        "POETRY_CACHE_DIR": str(cache / "poetry"),
        "PIPENV_CACHE_DIR": str(cache / "pipenv"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "PIP_PROGRESS_BAR": "off",
        "NO_COLOR": "1",
    }


def installer_environ(
    settings: Settings,
    config: Mapping[str, str] = {},
    run_as: AppUser | None = None,
    *,
    all_config: bool = False,
) -> dict[str, str]:
    """Environment for installer processes: this host's, then the app's config vars that
    steer installers (all of them with ``all_config``, for the steps after the install),
    then the caches, no prompts and no downloads of Pythons.

    Installers see no other config var: the environment they build may be shared, so what
    they see must be in its hash (one app's ``LD_PRELOAD`` never shapes another's). As
    ``run_as``, only a few of the host's variables pass, and the user's HOME and TMPDIR.
    """
    host = dict(os.environ)
    if run_as is not None:
        host = {k: v for k, v in host.items() if k in _HOST_KEPT or k.startswith(_HOST_PREFIXES)}
    chosen = config if all_config else {k: v for k, v in config.items() if k.startswith(STEERING)}
    merged = {**host, **chosen}
    env = {k: v for k, v in merged.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env.update(run_as.environ() if run_as is not None else {})
    env.update(fixed_environ(settings, run_as))
    return env


@dataclass(frozen=True)
class Diagnosis:
    """What a failed command's traceback means: lines to show before its tail, and the error."""

    lines: tuple[str, ...]
    message: str


Diagnose = Callable[[list[str]], Diagnosis | None]


def _traceback_tail(traceback: list[str]) -> list[str]:
    """The traceback's first line, then only its last frame and the exception."""
    frames = [i for i, line in enumerate(traceback) if line.startswith('  File "')]
    start = frames[-1] if frames else 1
    if start <= 1:
        return traceback
    return [traceback[0], f"  ... ({start - 1} lines left out)", *traceback[start:]]


def run_streaming(
    command: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log: BuildLog,
    what: str,
    diagnose: Diagnose | None = None,
    run_as: AppUser | None = None,
) -> None:
    """Run ``command``, streaming its output as detail lines; fail the build if it fails.

    With ``diagnose``, a Python traceback in the output is held back until the command
    ends: when ``diagnose`` recognises it, its explanation comes first and only the
    traceback's tail (last frame and exception) follows; otherwise it is shown whole.
    ``run_as``: as that user, in a session of its own, whatever it left running killed.
    """
    try:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            **as_user(run_as),
        )
    except OSError as exc:
        raise BuildError(f"Could not start {command[0]} for {what} ({exc.strerror}).") from None
    assert process.stdout is not None
    held: list[str] = []
    try:
        for line in process.stdout:
            if diagnose is not None and (held or line.startswith("Traceback (most recent")):
                held.append(line.rstrip())
            else:
                log.detail(line.rstrip())
    except BaseException:
        _kill_group(process, run_as)
        raise
    finally:
        process.stdout.close()
        code = process.wait()  # before the kill: a command that just closed its output
        _kill_group(process, run_as)  # may not have exited yet, and must not die of it
    diagnosis = diagnose(held) if diagnose is not None and held and code != 0 else None
    if diagnosis is not None:
        held = _traceback_tail(held)
    for line in [*(diagnosis.lines if diagnosis else ()), *held]:
        log.detail(line)
    if diagnosis is not None:
        raise BuildError(diagnosis.message)
    if code != 0:
        raise BuildError(f"{what} failed (exit status {code}); see the output above.")


def _kill_group(process: subprocess.Popen[str], run_as: AppUser | None) -> None:
    """As ``run_as``: kill what the command left running in its session, so nothing writes
    on once the tree is sealed."""
    if run_as is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def as_user(run_as: AppUser | None) -> dict[str, Any]:
    """``Popen`` arguments that run a command as ``run_as``, in a session of its own."""
    if run_as is None:
        return {}
    return {**run_as.popen(), "start_new_session": True, "umask": 0o077}
