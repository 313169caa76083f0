"""What decides an environment's contents, hashed into its key (``envs/<hash>``).

Same Python, installer, dependency files and installer-steering config vars → same
environment. A requirement on a local path (``-e .``, ``./pkg``, ``file:``) installs code
from the source tree into the environment, so that tree's digest joins the key: two apps
(or two versions of one) with different code there never share an environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from corral.builder.detect import Detection
from corral.builder.python import Interpreter
from corral.builder.source import tree_digest

__all__ = ["FORMAT", "STEERING", "dependency_inputs", "environment_hash", "installer_inputs"]

#: Bump when the layout of environments changes, so old ones are not reused.
FORMAT = "1"
#: Config vars with these prefixes steer an installer: installers see only them.
STEERING = ("UV_", "PIP_")
_INCLUDE = re.compile(r"^\s*(?:-r|-c|--requirement|--constraint)[\s=]+(\S+)")
_EDITABLE = re.compile(r"^\s*(?:-e|--editable)[\s=]+")
_FILE_URL = re.compile(r"file:(?://)?(\S+)")
_LOCK_PATH = re.compile(r'\b(?:path|editable|directory) = "([^"]+)"')


def _requirement_files(source: Path, name: str, seen: set[str]) -> Iterator[tuple[str, bytes]]:
    """A requirements file and every file it pulls in with ``-r``/``-c``, recursively."""
    path = (source / name).resolve()
    if name in seen or not path.is_file() or not path.is_relative_to(source.resolve()):
        return
    seen.add(name)
    content = path.read_bytes()
    yield name, content
    for line in content.decode("utf-8", errors="replace").splitlines():
        match = _INCLUDE.match(line)
        if match:
            included = os.path.normpath(os.path.join(os.path.dirname(name), match.group(1)))
            yield from _requirement_files(source, included, seen)


def local_reference(line: str) -> str | None:
    """The local path a requirement line installs from (``-e .``, ``./pkg``, ``x @ file:...``)."""
    text = _EDITABLE.sub("", line.split(" #", 1)[0]).strip()
    url = _FILE_URL.search(text)
    if url:
        return url.group(1)
    if text.startswith((".", "/")):
        return text.split(";", 1)[0].split("[", 1)[0].strip()
    return None


def _local_inputs(source: Path, references: list[tuple[str, str]]) -> dict[str, str]:
    """``local:<path>`` → digest of that tree (or file), for each (directory it is relative
    to, reference) inside ``source``."""
    root = source.resolve()
    inputs = {}
    for where, reference in references:
        target = (source / where / reference).resolve()
        if not target.is_relative_to(root) or not target.exists():
            inputs[f"local:{reference}"] = reference  # outside the slug: only its name counts
        elif target.is_dir():
            inputs[f"local:{target.relative_to(root)}"] = tree_digest(target)
        else:
            inputs[f"local:{target.relative_to(root)}"] = hashlib.sha256(
                target.read_bytes()
            ).hexdigest()
    return inputs


def dependency_inputs(source: Path, detection: Detection) -> dict[str, str]:
    """The inputs that decide what an environment holds, as name → text to hash."""
    inputs: dict[str, str] = {"manifest": detection.manifest}
    references: list[tuple[str, str]] = []  # (the directory it is relative to, reference)
    project = detection.pyproject.get("project", {})
    if detection.manifest in ("pyproject.toml", "uv.lock"):
        uv_tool = detection.pyproject.get("tool", {}).get("uv", {})
        inputs["pyproject"] = json.dumps(
            {
                "dependencies": project.get("dependencies", []),
                "dynamic": project.get("dynamic", []),
                "tool.uv": uv_tool,
            },
            sort_keys=True,
        )
        for requirement in project.get("dependencies", []):
            if (ref := local_reference(str(requirement).split("@", 1)[-1])) is not None:
                references.append((".", ref))
        for spec in uv_tool.get("sources", {}).values():
            if isinstance(spec, dict) and isinstance(spec.get("path"), str):
                references.append((".", spec["path"]))
    if detection.manifest in ("uv.lock", "pylock.toml"):
        lock = (source / detection.manifest).read_bytes()
        inputs[detection.manifest] = hashlib.sha256(lock).hexdigest()
        for ref in _LOCK_PATH.findall(lock.decode("utf-8", errors="replace")):
            if os.path.normpath(ref) != ".":  # the project itself is not installed there
                references.append((".", ref))
    elif detection.manifest == "poetry.lock":
        inputs["poetry.lock"] = hashlib.sha256((source / "poetry.lock").read_bytes()).hexdigest()
        inputs["pyproject"] = json.dumps(_poetry_relevant(detection.pyproject), sort_keys=True)
    elif detection.manifest == "Pipfile.lock":
        for name in ("Pipfile", "Pipfile.lock"):
            inputs[f"file:{name}"] = hashlib.sha256((source / name).read_bytes()).hexdigest()
    elif detection.manifest == "requirements.txt":
        for name, content in _requirement_files(source, "requirements.txt", set()):
            inputs[f"file:{name}"] = hashlib.sha256(content).hexdigest()
            for line in content.decode("utf-8", errors="replace").splitlines():
                if (ref := local_reference(line)) is not None:
                    references.append((os.path.dirname(name) or ".", ref))
    elif detection.manifest == "setup.py":
        for name in ("setup.py", "setup.cfg"):
            if (source / name).is_file():
                inputs[f"file:{name}"] = hashlib.sha256((source / name).read_bytes()).hexdigest()
    inputs.update(_local_inputs(source, references))
    return inputs


def _poetry_relevant(pyproject: dict) -> dict[str, object]:
    """What of ``pyproject.toml`` Poetry's lock depends on (the keys of its content hash):
    a lock out of date with these fails the build, so they must not reuse an environment."""
    project, poetry = pyproject.get("project", {}), pyproject.get("tool", {}).get("poetry", {})
    return {
        "project": {k: project.get(k) for k in ("requires-python", "dependencies",
                                                   "optional-dependencies")},
        "tool.poetry": {k: poetry.get(k) for k in ("dependencies", "dev-dependencies", "group",
                                                      "source", "extras")},
        "dependency-groups": pyproject.get("dependency-groups"),
    }  # fmt: skip


def installer_inputs(config: Mapping[str, str], fixed: Mapping[str, str]) -> dict[str, str]:
    """The config vars that steer an installer, as name → digest of the value (never the
    value); ``fixed`` are those corral sets itself whatever the config says."""
    return {
        f"config:{key}": hashlib.sha256(value.encode()).hexdigest()
        for key, value in config.items()
        if key.startswith(STEERING) and key not in fixed
    }


def environment_hash(python: Interpreter, installer: str, inputs: dict[str, str]) -> str:
    """The key of an environment: same Python, installer and inputs → same environment."""
    key = json.dumps(
        {"format": FORMAT, "python": str(python.version), "installer": installer, **inputs},
        sort_keys=True,
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]
