"""Front-end assets: an app with a ``package.json`` gets its npm packages and build step.

As Heroku does: the host's Node.js, checked against ``engines.node``; ``npm ci`` with a
``package-lock.json``, ``npm install`` otherwise; then ``heroku-postbuild`` if the package
defines it, else ``build``. This runs before collectstatic, so Django collects the output.

``node_modules`` is cached between builds of the app, keyed by the lock (or
``package.json``) and the Node.js version: a build with the same key moves the cached tree
in and runs no installer, and moves it back afterwards; it is left out of the slug unless
``[tool.corral] keep-node-modules = true``. The cache is the build's (the app's own when
isolated), and every move in it runs as the build's user, like npm itself.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.appusers import AppUser
from corral.builder.commands import run_streaming
from corral.builder.log import BuildLog
from corral.builder.slug import BASE_PATH
from corral.builder.source import remove_tree
from corral.errors import BuildError
from corral.files import locked

__all__ = ["Node", "node_assets", "node_for", "satisfies"]

#: npm told to be quiet and to ask nothing of the network but the packages.
NPM_ENVIRON = {
    "npm_config_update_notifier": "false",
    "npm_config_fund": "false",
    "npm_config_audit": "false",
    "npm_config_progress": "false",
}
_PART = re.compile(r"^[v=]*(\d+|[xX*])(?:\.(\d+|[xX*]))?(?:\.(\d+|[xX*]))?(?:[-+].*)?$")
_COMPARATOR = re.compile(r"^(>=|<=|>|<|=|\^|~)?\s*(.*)$")

Version = tuple[int, int, int]


def _parse(text: str) -> tuple[list[int], int]:
    """A version or partial version: its numbers, and how many were given (``x`` stops)."""
    match = _PART.match(text.strip())
    if not match:
        raise ValueError(text)
    numbers: list[int] = []
    for part in match.groups():
        if part is None or part in "xX*":
            break
        numbers.append(int(part))
    return [*numbers, 0, 0, 0][:3], len(numbers)


def _bump(numbers: list[int], at: int) -> Version:
    """The first version past ``numbers`` when the parts from ``at`` on may vary."""
    if at == 0:
        return (10**9, 0, 0)
    bumped = [*numbers[:at], 0, 0, 0][:3]
    bumped[at - 1] += 1
    return (bumped[0], bumped[1], bumped[2])


def _comparator(text: str) -> list[tuple[str, Version]]:
    operator, rest = _COMPARATOR.match(text).groups()  # type: ignore[union-attr]
    numbers, given = _parse(rest)
    low: Version = (numbers[0], numbers[1], numbers[2])
    if operator in (">", ">=", "<", "<="):
        if given < 3 and operator in (">", "<="):  # >1.2 means >=1.3.0; <=1.2 means <1.3.0
            return [({">": ">=", "<=": "<"}[operator], _bump(numbers, given))]
        return [(operator, low)]
    if operator == "^":
        first = next((i for i, n in enumerate(numbers[:given]) if n != 0), max(given - 1, 0))
        return [(">=", low), ("<", _bump(numbers, first + 1))]
    if operator == "~":
        return [(">=", low), ("<", _bump(numbers, 1 if given < 2 else 2))]
    if given == 3:
        return [("=", low)]
    return [(">=", low), ("<", _bump(numbers, given))]


def _holds(version: Version, operator: str, bound: Version) -> bool:
    return {
        ">": version > bound,
        ">=": version >= bound,
        "<": version < bound,
        "<=": version <= bound,
        "=": version == bound,
    }[operator]


def satisfies(version: str, spec: str) -> bool:
    """Whether ``version`` is in the npm semver range ``spec`` (``>=18``, ``^20.1``,
    ``18.x || 20.x``, ``16 - 20``); raises ValueError for a range it cannot read."""
    numbers, _ = _parse(version)
    current: Version = (numbers[0], numbers[1], numbers[2])
    for alternative in spec.split("||"):
        words = re.sub(r"(>=|<=|>|<|=|\^|~)\s+", r"\1", alternative.strip()).split()
        if len(words) == 3 and words[1] == "-":
            low, _ = _parse(words[0])
            high, given = _parse(words[2])
            top = (
                [("<=", (high[0], high[1], high[2]))] if given == 3 else [("<", _bump(high, given))]
            )
            checks = [(">=", (low[0], low[1], low[2])), *top]
        else:
            checks = [check for word in words for check in _comparator(word)]
        if all(_holds(current, op, bound) for op, bound in checks):
            return True
    return False


def _read_package(slug_dir: Path) -> dict:
    try:
        package = json.loads((slug_dir / "package.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BuildError(
            f"package.json is not valid JSON ({exc}); fix it and build again."
        ) from None
    if not isinstance(package, dict):
        raise BuildError("package.json must hold a JSON object; fix it and build again.")
    return package


def host_node() -> tuple[str, str]:
    """The host's ``node`` (as dynos find it) and its version, or a refusal saying so."""
    node = shutil.which("node", path=BASE_PATH)
    npm = shutil.which("npm", path=BASE_PATH)
    if node is None or npm is None:
        raise BuildError(
            "The app has a package.json, but Node.js and npm are not installed on this host; "
            "install them (e.g. `apt-get install nodejs npm`) and build again."
        )
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    return npm, out.stdout.strip().lstrip("v")


def _check_engines(package: dict, version: str) -> None:
    wanted = (
        package.get("engines", {}).get("node") if isinstance(package.get("engines"), dict) else None
    )
    if not wanted:
        return
    try:
        fits = satisfies(version, str(wanted))
    except ValueError:
        raise BuildError(
            f"engines.node in package.json is {wanted!r}, which is not a version range; "
            "write one such as '>=18' or '20.x'."
        ) from None
    if not fits:
        raise BuildError(
            f"package.json asks for Node.js {wanted} (engines.node), but this host has Node.js "
            f"{version}; change engines.node to match it, or install a matching Node.js."
        )


def _in_cache(
    command: list[str], cwd: Path, env: dict[str, str], log: BuildLog, run_as: AppUser | None
) -> None:
    """Change the build's cache with ``command``: as the build's user when isolated (the
    cache is that user's to shape; root never writes where it could be led elsewhere)."""
    run_streaming(command, cwd=cwd, env=env, log=log, what="Caching node_modules", run_as=run_as)


@dataclass(frozen=True)
class Node:
    """The host's Node.js as an app with a ``package.json`` will be built with."""

    npm: str
    version: str
    package: dict[str, Any]


def node_for(slug_dir: Path) -> Node | None:
    """The Node.js to build ``slug_dir``'s assets with (None without a ``package.json``),
    or a refusal when the host has none or not one ``engines.node`` accepts."""
    if not (slug_dir / "package.json").is_file():
        return None
    package = _read_package(slug_dir)
    npm, version = host_node()
    _check_engines(package, version)
    return Node(npm, version, package)


def node_assets(
    slug_dir: Path,
    node: Node,
    env: dict[str, str],
    log: BuildLog,
    *,
    cache: Path,
    keep: bool = False,
    run_as: AppUser | None = None,
) -> None:
    """Install the app's npm packages and run its build script (see the module)."""
    npm, version, package = node.npm, node.version, node.package
    env = {**env, **NPM_ENVIRON, "npm_config_cache": str(cache / "npm")}
    lock = slug_dir / "package-lock.json"
    keyed = lock if lock.is_file() else slug_dir / "package.json"
    key = hashlib.sha256(keyed.read_bytes() + version.encode()).hexdigest()[:16]
    cached, modules = cache / "node_modules" / key, slug_dir / "node_modules"
    remove_tree(modules)  # one that came with the source is never trusted as installed
    _in_cache(["/bin/mkdir", "-p", str(cached.parent)], slug_dir, env, log, run_as)
    # the lock beside the slugs (root's when isolated), not in the cache the user shapes
    with locked(slug_dir.parent / f".node-modules-{key}.lock", blocking=False) as mine:
        if mine and cached.is_dir() and not cached.is_symlink():
            with log.step(f"Using cached node_modules {key[:8]} (Node.js {version})"):
                _in_cache(["/bin/mv", "-T", str(cached), str(modules)], slug_dir, env, log, run_as)
        else:
            command = [npm, "ci"] if lock.is_file() else [npm, "install"]
            title = f"Installing Node.js packages with npm {command[1]} (Node.js {version})"
            with log.step(title):
                run_streaming(command, cwd=slug_dir, env=env, log=log,
                              what=f"npm {command[1]}", run_as=run_as)  # fmt: skip
        scripts = package.get("scripts")
        scripts = scripts if isinstance(scripts, dict) else {}
        script = next((s for s in ("heroku-postbuild", "build") if s in scripts), None)
        if script is not None:
            with log.step(f"Running npm run {script}"):
                run_streaming([npm, "run", script], cwd=slug_dir, env=env, log=log,
                              what=f"npm run {script}", run_as=run_as)  # fmt: skip
        if mine and modules.is_dir() and not cached.exists():
            save = ["/bin/cp", "-a"] if keep else ["/bin/mv", "-T"]
            _in_cache([*save, str(modules), str(cached)], slug_dir, env, log, run_as)
            older = ["-mindepth", "1", "-maxdepth", "1", "!", "-name", key, "!", "-name", "*.lock"]
            prune = ["/usr/bin/find", str(cached.parent), *older, "-exec", "rm", "-rf", "{}", "+"]
            _in_cache(prune, slug_dir, env, log, run_as)  # one lock's tree per app is kept
    if not keep:
        remove_tree(modules)
