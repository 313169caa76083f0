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

import functools
import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from corral.appusers import AppUser
from corral.builder.commands import (
    Diagnose,
    Diagnosis,
    as_user,
    fixed_environ,
    installer_environ,
    run_streaming,
    uv_bin,
)
from corral.builder.detect import Detection
from corral.builder.inputs import dependency_inputs, environment_hash, installer_inputs
from corral.builder.locks import LOCK_TOOLS, exported_lock
from corral.builder.log import BuildLog
from corral.builder.ownership import ENV_MODES, seal
from corral.builder.python import Interpreter
from corral.builder.source import remove_tree
from corral.builder.tools import TOOLS, ensure_tool
from corral.config import Settings
from corral.errors import BuildError
from corral.files import atomic_write, locked

#: Re-exported: steps and the CLI run commands the way installers do.
__all__ = [
    "INSTALLERS",
    "MARKER",
    "Diagnose",
    "Diagnosis",
    "Environment",
    "ensure_environment",
    "freeze",
    "installer_environ",
    "lock_path",
    "run_streaming",
    "uv_bin",
]

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

    settings: Settings
    source: Path
    detection: Detection
    python: Interpreter
    installer: str
    env: dict[str, str]
    uv: str
    run_as: AppUser | None


def _install(path: Path, job: _Install, log: BuildLog) -> None:
    manifest = job.detection.manifest
    if job.installer == "pip" and manifest not in (
        "requirements.txt", "pyproject.toml", *LOCK_TOOLS
    ):  # fmt: skip
        raise BuildError(
            f"The pip installer cannot install from {manifest}; use a requirements.txt, "
            "pyproject.toml, poetry.lock or Pipfile.lock, or the default uv installer."
        )
    if manifest not in (*LOCK_TOOLS, "pylock.toml"):
        _install_from(path, job, log, manifest)
        return

    def tool(name: str) -> Path:
        return ensure_tool(job.settings, name, job.python, log)

    with exported_lock(job.source, manifest, tool, job.env, log, job.run_as) as exported:
        _install_from(path, job, log, str(exported))


def _install_from(path: Path, job: _Install, log: BuildLog, requirements: str) -> None:
    """Install into ``path`` from ``requirements`` (the manifest, or a lock's export)."""
    detection, python, uv = job.detection, job.python, job.uv
    run = functools.partial(run_streaming, env=job.env, log=log, run_as=job.run_as)
    what = f"Installing dependencies with {job.installer}"
    if job.installer == "pip":
        venv = [str(python.executable), "-m", "venv", str(path)]
        run(venv, cwd=job.source, what="Creating the virtualenv")
        pip = [str(path / "bin" / "python"), "-m", "pip", "install"]
        if requirements.endswith("requirements.txt"):
            run([*pip, "-r", requirements], cwd=job.source, what=what)
        elif listed := _static_requirements(detection):
            run([*pip, *listed], cwd=job.source, what=what)
        return
    venv = [uv, "venv", "--quiet", "--no-config", "--python", str(python.executable), str(path)]
    run(venv, cwd=path.parent, what="Creating the virtualenv")
    target = ["--python", str(path / "bin" / "python")]
    # Bytecode now, as pip makes it: a sealed environment is read-only to the dynos, which
    # would otherwise compile every module they import from source at each boot (0.4 s of
    # a Flask dyno's start, most of a deploy's rollout).
    compiled = ["--compile-bytecode"]
    if detection.manifest == "uv.lock":
        sync_env = {**job.env, "UV_PROJECT_ENVIRONMENT": str(path)}
        command = [uv, "sync", "--locked", "--no-install-project", "--no-dev", *compiled, *target]
        run(command, cwd=job.source, what=what, env=sync_env)
    else:
        # -e . (or any local path) is installed as a copy: an editable link would point at
        # this build's work directory, gone once the slug is renamed into place
        install = [uv, "pip", "install", "--no-editable", *compiled, *target, "-r", requirements]
        run(install, cwd=job.source, what=what)


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
        **as_user(run_as),
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
    fixed = fixed_environ(settings, run_as)
    inputs = {**dependency_inputs(source, detection), **installer_inputs(config, fixed)}
    if run_as is not None:
        inputs["builder"] = run_as.name
    if (tool := LOCK_TOOLS.get(detection.manifest)) is not None:
        inputs["tool"] = " ".join(TOOLS[tool].requirements)
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
        job = _Install(settings, source, detection, python, installer, env, uv or uv_bin(), run_as)
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
