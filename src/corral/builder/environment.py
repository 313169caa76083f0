"""Immutable virtualenvs, one per hash of Python version, installer and dependency inputs.

An environment is built in place under ``envs/<hash>`` while holding ``envs/<hash>.lock``
and counts only once its completion marker exists; a build that died half-way leaves
no marker, and the next build starts that environment over. Each reuse touches the
marker: the pruner (:mod:`corral.deploy.disk`) leaves recently used environments alone.

Installers see the app's config vars (``UV_INDEX_URL``, ``PIP_EXTRA_INDEX_URL`` for a
private index); those that steer an installer (``UV_*``, ``PIP_*``) join the hash, as
digests only, so an environment is never shared by apps installing from other indexes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from uv import find_uv_bin

from corral.builder.detect import Detection
from corral.builder.log import BuildLog
from corral.builder.python import Interpreter
from corral.builder.source import remove_tree
from corral.config import Settings
from corral.errors import BuildError
from corral.files import atomic_write, locked

#: Bump when the layout of environments changes, so old ones are not reused.
FORMAT = "1"
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


def _requirement_files(source: Path, name: str, seen: set[str]) -> Iterator[tuple[str, bytes]]:
    """A requirements file and every file it pulls in with ``-r``/``-c``, recursively."""
    path = (source / name).resolve()
    if name in seen or not path.is_file() or not path.is_relative_to(source.resolve()):
        return
    seen.add(name)
    content = path.read_bytes()
    yield name, content
    for line in content.decode("utf-8", errors="replace").splitlines():
        match = re.match(r"^\s*(?:-r|-c|--requirement|--constraint)[\s=]+(\S+)", line)
        if match:
            included = os.path.normpath(os.path.join(os.path.dirname(name), match.group(1)))
            yield from _requirement_files(source, included, seen)


def dependency_inputs(source: Path, detection: Detection) -> dict[str, str]:
    """The inputs that decide what an environment holds, as name → text to hash."""
    inputs: dict[str, str] = {"manifest": detection.manifest}
    project = detection.pyproject.get("project", {})
    if detection.manifest in ("pyproject.toml", "uv.lock"):
        inputs["pyproject"] = json.dumps(
            {
                "dependencies": project.get("dependencies", []),
                "dynamic": project.get("dynamic", []),
                "tool.uv": detection.pyproject.get("tool", {}).get("uv", {}),
            },
            sort_keys=True,
        )
    if detection.manifest == "uv.lock":
        inputs["uv.lock"] = hashlib.sha256((source / "uv.lock").read_bytes()).hexdigest()
    elif detection.manifest == "requirements.txt":
        for name, content in _requirement_files(source, "requirements.txt", set()):
            inputs[f"file:{name}"] = hashlib.sha256(content).hexdigest()
    elif detection.manifest == "setup.py":
        for name in ("setup.py", "setup.cfg"):
            if (source / name).is_file():
                inputs[f"file:{name}"] = hashlib.sha256((source / name).read_bytes()).hexdigest()
    return inputs


def environment_hash(python: Interpreter, installer: str, inputs: dict[str, str]) -> str:
    """The key of an environment: same Python, installer and inputs → same environment."""
    key = json.dumps(
        {"format": FORMAT, "python": str(python.version), "installer": installer, **inputs},
        sort_keys=True,
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _fixed_environ(settings: Settings) -> dict[str, str]:
    """What corral sets for installers whatever the app's config says."""
    return {
        "UV_CACHE_DIR": str(settings.cache_dir / "uv"),
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_PROGRESS": "1",
        "PIP_CACHE_DIR": str(settings.cache_dir / "pip"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
        "PIP_PROGRESS_BAR": "off",
        "NO_COLOR": "1",
    }


def installer_environ(settings: Settings, config: Mapping[str, str] = {}) -> dict[str, str]:
    """Environment for installer processes: this host's, then the app's config vars, then
    shared caches, no prompts and no downloads of Pythons."""
    merged = {**os.environ, **config}
    env = {k: v for k, v in merged.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env.update(_fixed_environ(settings))
    return env


def installer_inputs(settings: Settings, config: Mapping[str, str]) -> dict[str, str]:
    """The config vars that steer an installer, as name → digest of the value (never the value)."""
    fixed = _fixed_environ(settings)
    return {
        f"config:{key}": hashlib.sha256(value.encode()).hexdigest()
        for key, value in config.items()
        if key.startswith(("UV_", "PIP_")) and key not in fixed
    }


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
) -> None:
    """Run ``command``, streaming its output as detail lines; fail the build if it fails.

    With ``diagnose``, a Python traceback in the output is held back until the command
    ends: when ``diagnose`` recognises it, its explanation comes first and only the
    traceback's tail (last frame and exception) follows; otherwise it is shown whole.
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


def _install(
    path: Path,
    source: Path,
    detection: Detection,
    python: Interpreter,
    installer: str,
    env: dict[str, str],
    log: BuildLog,
) -> None:
    uv = uv_bin()
    what = f"Installing dependencies with {installer}"
    if installer == "pip":
        if detection.manifest not in ("requirements.txt", "pyproject.toml"):
            raise BuildError(
                f"The pip installer cannot install from {detection.manifest}; use a "
                "requirements.txt or pyproject.toml, or the default uv installer."
            )
        run_streaming(
            [str(python.executable), "-m", "venv", str(path)],
            cwd=source,
            env=env,
            log=log,
            what="Creating the virtualenv",
        )
        pip = [str(path / "bin" / "python"), "-m", "pip", "install"]
        if detection.manifest == "requirements.txt":
            run_streaming([*pip, "-r", "requirements.txt"], cwd=source, env=env, log=log, what=what)
        elif requirements := _static_requirements(detection):
            run_streaming([*pip, *requirements], cwd=source, env=env, log=log, what=what)
        return
    run_streaming(
        [uv, "venv", "--quiet", "--no-config", "--python", str(python.executable), str(path)],
        cwd=path.parent,
        env=env,
        log=log,
        what="Creating the virtualenv",
    )
    target = ["--python", str(path / "bin" / "python")]
    if detection.manifest == "uv.lock":
        sync_env = {**env, "UV_PROJECT_ENVIRONMENT": str(path)}
        command = [uv, "sync", "--locked", "--no-install-project", "--no-dev", *target]
        run_streaming(command, cwd=source, env=sync_env, log=log, what=what)
    else:
        command = [uv, "pip", "install", *target, "-r", detection.manifest]
        run_streaming(command, cwd=source, env=env, log=log, what=what)


def freeze(env_python: Path, env: dict[str, str]) -> list[str]:
    """What is installed in an environment, as ``pip freeze`` lists it."""
    out = subprocess.run(
        [uv_bin(), "pip", "freeze", "--python", str(env_python)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
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
) -> Environment:
    """Reuse the environment for these inputs, or build it once even with builds racing."""
    inputs = {**dependency_inputs(source, detection), **installer_inputs(settings, config)}
    env_hash = environment_hash(python, installer, inputs)
    path = settings.envs_dir / env_hash
    env = installer_environ(settings, config)
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
        try:
            _install(path, source, detection, python, installer, env, log)
            frozen = freeze(path / "bin" / "python", env)
            marker = {"freeze": frozen, "python": str(python.version)}
            atomic_write(path / MARKER, json.dumps(marker), mode=0o600)
        except BaseException:
            remove_tree(path)
            raise
    return Environment(path, env_hash, frozen, reused=False)
