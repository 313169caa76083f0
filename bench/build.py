"""Build benchmark: cold build, new env from a warm cache, unchanged rebuild, uv vs pip,
and the unchanged rebuilds of a Poetry app and of a Node app.

Run: ``.venv/bin/python bench/build.py [--runs 5]``. Every figure is the median of
``--runs`` runs of the real CLI (``python -m corral build``) on a Flask + gunicorn app;
ratios are measured in the same run, so a busy machine slows both sides alike. The
Poetry and Node rebuilds also show the build's own time (``build_seconds``, the CLI's
start-up left out) and fail if any installer ran.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

APP = "from flask import Flask\napp = Flask(__name__)\napp.get('/')(lambda: 'hi')\n"
REQUIREMENTS = "flask>=3,<4\ngunicorn>=22\n"


def make_app(root: Path, installer: str = "uv") -> Path:
    """A Flask app whose requirements hash is new, so its environment must be built."""
    app = root / f"app-{uuid.uuid4().hex[:8]}"
    app.mkdir(parents=True)
    (app / "app.py").write_text(APP)
    (app / "requirements.txt").write_text(REQUIREMENTS + f"# {uuid.uuid4().hex}\n")
    if installer == "pip":
        (app / "pyproject.toml").write_text('[tool.corral]\ninstaller = "pip"\n')
    return app


def timed_build(app: Path, home: Path) -> float:
    """Seconds one ``corral build`` takes, start of the CLI to its exit."""
    return _build(app, home)[0]


def _build(app: Path, home: Path) -> tuple[float, dict]:
    env = {**os.environ, "CORRAL_HOME": str(home)}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "corral", "build", "--json", str(app)],
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"build failed:\n{result.stdout}\n{result.stderr}")
    return elapsed, json.loads(result.stdout)


def rebuild_without_installer(app: Path, home: Path) -> tuple[float, float]:
    """(CLI seconds, the build's own seconds) of a rebuild, which must run no installer."""
    elapsed, slug = _build(app, home)
    ran = [s["step"] for s in slug["steps"] if str(s["step"]).startswith("Install")]
    if ran:
        raise SystemExit(f"an unchanged rebuild of {app.name} ran installers: {ran}")
    return elapsed, slug["build_seconds"]


def poetry_app(root: Path, home: Path) -> Path:
    """A Flask app locked by Poetry itself (not a package: no project to build)."""
    # the tool corral installs for Poetry apps, installed here on the home's default Python
    from corral.builder.environment import uv_bin
    from corral.builder.log import BuildLog
    from corral.builder.python import find_interpreter, installed_interpreters, python_request
    from corral.builder.tools import ensure_tool
    from corral.config import Settings

    settings = Settings.load(home)
    request = python_request(root, {}, settings.default_python)
    python = find_interpreter(request, installed_interpreters(settings.pyenv_root, uv_bin()))
    poetry = ensure_tool(settings, "poetry", python, BuildLog(lambda line: None))
    app = root / "poetry-app"
    app.mkdir()
    (app / "app.py").write_text(APP)
    (app / ".python-version").write_text(f"{python.version}\n")
    (app / "pyproject.toml").write_text(
        '[project]\nname = "bench"\nversion = "0.1"\nrequires-python = ">=3.9"\n'
        'dependencies = ["flask>=3,<4", "gunicorn>=22"]\n[tool.poetry]\npackage-mode = false\n'
    )
    env = {**os.environ, "POETRY_CACHE_DIR": str(root / "poetry-cache")}
    subprocess.run([str(poetry), "lock"], cwd=app, env=env, check=True, capture_output=True)
    return app


def node_app(root: Path) -> Path:
    """A Flask app whose package.json (made by npm) bundles its JavaScript with esbuild."""
    app = root / "node-app"
    (app / "src").mkdir(parents=True)
    (app / "app.py").write_text(APP)
    (app / "requirements.txt").write_text(REQUIREMENTS)
    (app / "src" / "main.js").write_text('import { x } from "./x.js";\nconsole.log(x);\n')
    (app / "src" / "x.js").write_text('export const x = "bundled";\n')
    env = {**os.environ, "npm_config_cache": str(root / "npm-cache")}
    for args in (
        ["init", "-y"],
        ["install", "--package-lock-only", "--save-dev", "esbuild"],
        ["pkg", "set", "scripts.build=esbuild src/main.js --bundle --outfile=static/app.js"],
    ):
        subprocess.run(["npm", *args], cwd=app, env=env, check=True, capture_output=True)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        root = Path(tmp)
        warm_home = root / "warm"
        timed_build(make_app(root), warm_home)  # warm the uv cache
        timed_build(make_app(root, "pip"), warm_home)  # and pip's
        for run in range(runs):
            results.setdefault("cold build (empty cache)", []).append(
                timed_build(make_app(root), root / f"cold-{run}")
            )
            results.setdefault("new environment, warm cache (uv)", []).append(
                timed_build(make_app(root), warm_home)
            )
            results.setdefault("new environment, warm cache (pip)", []).append(
                timed_build(make_app(root, "pip"), warm_home)
            )
            same = make_app(root)
            timed_build(same, warm_home)
            results.setdefault("rebuild, unchanged dependencies", []).append(
                timed_build(same, warm_home)
            )
        own: dict[str, list[float]] = {}
        for name, app in (
            ("rebuild, unchanged poetry.lock", poetry_app(root, warm_home)),
            ("rebuild, unchanged package-lock", node_app(root)),
        ):
            timed_build(app, warm_home)  # its environment, tools and node_modules
            for _ in range(runs):
                elapsed, seconds = rebuild_without_installer(app, warm_home)
                results.setdefault(name, []).append(elapsed)
                own.setdefault(name, []).append(seconds)
    medians = {name: statistics.median(times) for name, times in results.items()}
    print(f"corral build benchmark, median of {runs} runs (Flask + gunicorn app)")
    for name, median in medians.items():
        spread = f"{min(results[name]):.2f}-{max(results[name]):.2f}"
        print(f"  {name:<36} {median:6.2f} s   (range {spread} s)")
        if name in own:
            label = "  the build itself, no CLI start-up"
            print(f"  {label:<36} {statistics.median(own[name]):6.2f} s   (no installer ran)")
    ratio = (
        medians["new environment, warm cache (pip)"] / medians["new environment, warm cache (uv)"]
    )
    print(f"  {'uv speed-up over pip (new env)':<36} {ratio:6.1f}x")


if __name__ == "__main__":
    main()
