"""Immutable virtualenvs, one per hash of Python version, installer and dependency inputs.

An environment is built in place under ``envs/<hash>`` while holding ``envs/<hash>.lock``
and counts only once its completion marker exists; a build that died half-way leaves
no marker, and the next build starts that environment over. Each reuse touches the
marker: the pruner (:mod:`corral.deploy.disk`) leaves recently used environments alone.

Installers see only the app's config vars that steer them (``UV_*``, ``PIP_*``: a
private index's ``UV_INDEX_URL``); those join the hash (:mod:`corral.builder.inputs`), as
digests only, so an environment is never shared by apps installing from other indexes.

An isolated build (``run_as`` the app's user) installs with the app's own cache into a
directory the user owns, then seals it (root's, no write bits) before the marker is
written, so nothing the app runs later can change it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uv import find_uv_bin

from corral.appusers import AppUser
from corral.builder.detect import Detection
from corral.builder.inputs import STEERING, dependency_inputs, environment_hash, installer_inputs
from corral.builder.log import BuildLog
from corral.builder.ownership import ENV_MODES, seal
from corral.builder.python import Interpreter
from corral.builder.source import remove_tree
from corral.config import Settings
from corral.errors import BuildError
from corral.files import atomic_write, locked

MARKER = ".corral-complete"
INSTALLERS = ("uv", "pip")


@dataclass(frozen=True)
class Environment:
    """A finished virtualenv and what is installed in it."""

    path: Path
    hash: str
    freeze: list[str]
    reused: bool

    @property
    def python(self) -> Path:
        """The environment's interpreter."""
        return self.path / "bin" / "python"


def uv_bin() -> str:
    """The uv executable installed alongside corral."""
    return find_uv_bin()


#: What of the platform's own environment an isolated build's commands see.
_HOST_KEPT = ("PATH", "LANG", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")
_HOST_PREFIXES = ("LC_", *STEERING, "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy",
                       "https_proxy", "no_proxy")  # fmt: skip


def _fixed_environ(settings: Settings, run_as: AppUser | None = None) -> dict[str, str]:
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
    env.update(_fixed_environ(settings, run_as))
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
            **_as_user(run_as),
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
    finally:
        if run_as is not None:  # its leftovers must not write on once the tree is sealed
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        process.stdout.close()
        code = process.wait()
    diagnosis = diagnose(held) if diagnose is not None and held and code != 0 else None
    if diagnosis is not None:
        held = _traceback_tail(held)
    for line in [*(diagnosis.lines if diagnosis else ()), *held]:
        log.detail(line)
    if diagnosis is not None:
        raise BuildError(diagnosis.message)
    if code != 0:
        raise BuildError(f"{what} failed (exit status {code}); see the output above.")


def _as_user(run_as: AppUser | None) -> dict[str, Any]:
    """``Popen`` arguments that run a command as ``run_as``, in a session of its own."""
    if run_as is None:
        return {}
    return {**run_as.popen(), "start_new_session": True, "umask": 0o077}


def lock_path(settings: Settings, env_hash: str) -> Path:
    """The lock held while the environment ``env_hash`` is built, reused or removed."""
    return settings.envs_dir / f"{env_hash}.lock"


def _read_marker(path: Path) -> list[str] | None:
    try:
        return json.loads((path / MARKER).read_text())["freeze"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return None


def _static_requirements(detection: Detection) -> list[str]:
    project = detection.pyproject.get("project", {})
    if "dependencies" in project.get("dynamic", []):
        raise BuildError(
            "The pip installer needs the dependencies listed in pyproject.toml, not dynamic; "
            "list them under [project] dependencies or use the uv installer."
        )
    return list(project.get("dependencies", []))


@dataclass(frozen=True)
class _Install:
    """How one environment is installed: with what, from where, as whom."""

    source: Path
    detection: Detection
    python: Interpreter
    installer: str
    env: dict[str, str]
    uv: str
    run_as: AppUser | None


def _install(path: Path, job: _Install, log: BuildLog) -> None:
    detection, python, uv = job.detection, job.python, job.uv
    run = functools.partial(run_streaming, env=job.env, log=log, run_as=job.run_as)
    what = f"Installing dependencies with {job.installer}"
    if job.installer == "pip":
        if detection.manifest not in ("requirements.txt", "pyproject.toml"):
            raise BuildError(
                f"The pip installer cannot install from {detection.manifest}; use a "
                "requirements.txt or pyproject.toml, or the default uv installer."
            )
        venv = [str(python.executable), "-m", "venv", str(path)]
        run(venv, cwd=job.source, what="Creating the virtualenv")
        pip = [str(path / "bin" / "python"), "-m", "pip", "install"]
        if detection.manifest == "requirements.txt":
            run([*pip, "-r", "requirements.txt"], cwd=job.source, what=what)
        elif requirements := _static_requirements(detection):
            run([*pip, *requirements], cwd=job.source, what=what)
        return
    venv = [uv, "venv", "--quiet", "--no-config", "--python", str(python.executable), str(path)]
    run(venv, cwd=path.parent, what="Creating the virtualenv")
    target = ["--python", str(path / "bin" / "python")]
    if detection.manifest == "uv.lock":
        sync_env = {**job.env, "UV_PROJECT_ENVIRONMENT": str(path)}
        command = [uv, "sync", "--locked", "--no-install-project", "--no-dev", *target]
        run(command, cwd=job.source, what=what, env=sync_env)
    else:
        run([uv, "pip", "install", *target, "-r", detection.manifest], cwd=job.source, what=what)


def freeze(
    env_python: Path, env: dict[str, str], *, uv: str | None = None, run_as: AppUser | None = None
) -> list[str]:
    """What is installed in an environment, as ``pip freeze`` lists it (as ``run_as``: the
    environment's interpreter is the builder's until it is sealed)."""
    out = subprocess.run(
        [uv or uv_bin(), "pip", "freeze", "--python", str(env_python)],
        cwd=env_python.parent.parent,  # the caller's may be one its user cannot enter
        capture_output=True,
        text=True,
        env=env,
        check=False,
        **_as_user(run_as),
    )
    if out.returncode != 0:
        raise BuildError(f"Could not list the installed packages: {out.stderr.strip()}")
    return [line for line in out.stdout.splitlines() if line.strip()]


def ensure_environment(
    settings: Settings,
    source: Path,
    detection: Detection,
    python: Interpreter,
    installer: str,
    log: BuildLog,
    config: Mapping[str, str] = {},
    *,
    run_as: AppUser | None = None,
    uv: str | None = None,
) -> Environment:
    """Reuse the environment for these inputs, or build it once even with builds racing.

    As ``run_as``, the environment is built in a directory of that user's, then sealed
    (root's, read-only) before it counts; it is that app's alone (its user is in the
    hash): what the app's own code left in its cache or HOME can shape only its own.
    """
    fixed = _fixed_environ(settings, run_as)
    inputs = {**dependency_inputs(source, detection), **installer_inputs(config, fixed)}
    if run_as is not None:
        inputs["builder"] = run_as.name
    env_hash = environment_hash(python, installer, inputs)
    path = settings.envs_dir / env_hash
    env = installer_environ(settings, config, run_as)
    if run_as is not None:
        settings.envs_dir.mkdir(parents=True, exist_ok=True)
        settings.envs_dir.chmod(0o711)  # enterable, not listable, writable by root only
    # Under the lock even to reuse: the pruner removes an unused environment only holding
    # it, and only one untouched for a while, so a build about to use one keeps it.
    with locked(lock_path(settings, env_hash)):
        frozen = _read_marker(path)  # another build may have finished it meanwhile
        if frozen is not None:
            os.utime(path / MARKER)  # used now
            return Environment(path, env_hash, frozen, reused=True)
        if path.exists():
            log.detail(f"Discarding environment {env_hash[:8]} left half-built by an earlier build")
            remove_tree(path)
        job = _Install(source, detection, python, installer, env, uv or uv_bin(), run_as)
        try:
            if run_as is not None:
                path.mkdir(mode=0o700)
                os.chown(path, run_as.uid, run_as.gid)
            _install(path, job, log)
            frozen = freeze(path / "bin" / "python", env, uv=job.uv, run_as=run_as)
            if run_as is not None:
                for dropped in seal(path, run_as.uid, ENV_MODES):
                    log.warn(f"{dropped} was not the build's own file; it was left out.")
            marker = {"freeze": frozen, "python": str(python.version)}
            atomic_write(path / MARKER, json.dumps(marker), mode=0o600 if run_as is None else 0o444)
        except BaseException:
            remove_tree(path)
            raise
    return Environment(path, env_hash, frozen, reused=False)
