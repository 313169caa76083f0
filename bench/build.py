"""Build benchmark: cold build, new env from a warm cache, unchanged rebuild, uv vs pip.

Run: ``.venv/bin/python bench/build.py [--runs 5]``. Every figure is the median of
``--runs`` runs of the real CLI (``python -m corral build``) on a Flask + gunicorn app;
ratios are measured in the same run, so a busy machine slows both sides alike.
"""

from __future__ import annotations

import argparse
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
    env = {**os.environ, "CORRAL_HOME": str(home)}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "corral", "build", str(app)],
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"build failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


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
    medians = {name: statistics.median(times) for name, times in results.items()}
    print(f"corral build benchmark, median of {runs} runs (Flask + gunicorn app)")
    for name, median in medians.items():
        spread = f"{min(results[name]):.2f}-{max(results[name]):.2f}"
        print(f"  {name:<36} {median:6.2f} s   (range {spread} s)")
    ratio = (
        medians["new environment, warm cache (pip)"] / medians["new environment, warm cache (uv)"]
    )
    print(f"  {'uv speed-up over pip (new env)':<36} {ratio:6.1f}x")


if __name__ == "__main__":
    main()
