"""Node assets: a Flask app whose package.json (made by npm) bundles its JavaScript with a
bundler from the npm registry; the page loads the bundle, node_modules is cached by lock."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from corral.builder import build
from corral.builder.node import satisfies
from corral.config import Settings
from support.cli import run_corral
from support.processes import running_process
from support.sources import write
from support.wait import wait_for_http

PAGE = """
from flask import Flask

app = Flask(__name__)

@app.get("/")
def index():
    return '<div id="out"></div><script src="/static/app.js"></script>'
"""
BUNDLE = "static/app.js"


def test_engines_ranges_read_as_npm_reads_them() -> None:
    for spec in (">=18", "20.x", "^20.1", "~20.20", "18 || >=20 <21", "16 - 20", "20", "*", ""):
        assert satisfies("20.20.2", spec), spec
    for spec in ("<20", "^21", "~20.19", "18.x || 19.x", "16 - 19.5", ">20.20.2", "21"):
        assert not satisfies("20.20.2", spec), spec
    assert satisfies("0.3.1", "^0.3") and not satisfies("0.4.0", "^0.3")
    with pytest.raises(ValueError):
        satisfies("20.0.0", ">=twenty")


def test_a_node_version_engines_refuses_fails_before_installing(tmp_path: Path) -> None:
    app = write(
        tmp_path / "old",
        {
            "requirements.txt": "flask\n",
            "app.py": PAGE,
            "package.json": json.dumps({"name": "old", "engines": {"node": ">=99"}}),
        },
    )
    result = run_corral("build", str(app), home=tmp_path / "home")
    assert result.returncode == 1, result.stdout
    message = result.stderr.strip().splitlines()[-1]
    assert "package.json asks for Node.js >=99 (engines.node), but this host has" in message
    assert "Installing dependencies" not in result.stdout
    assert "Traceback" not in result.stderr


def npm(*args: str, cwd: Path, settings: Settings) -> None:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(cwd.parent),
           "npm_config_cache": str(settings.cache_dir / "test-npm")}  # fmt: skip
    done = subprocess.run(
        ["npm", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_a_flask_app_serves_the_bundle_its_npm_build_made(
    tmp_path: Path, corral_home: Path
) -> None:
    settings = Settings.load(corral_home)
    app = write(
        tmp_path / "front",
        {
            "requirements.txt": "flask\ngunicorn\n",
            "app.py": PAGE,
            "Procfile": "web: gunicorn app:app\n",
            "src/main.js": 'import { greet } from "./greet.js";\n'
            'document.getElementById("out").textContent = greet("corral");\n',
            "src/greet.js": "export const greet = (name) => `bundled for ${name}`;\n",
        },
    )
    npm("init", "-y", cwd=app, settings=settings)
    npm("install", "--save-dev", "esbuild", cwd=app, settings=settings)
    build_script = f"scripts.build=esbuild src/main.js --bundle --outfile={BUNDLE}"
    npm("pkg", "set", build_script, cwd=app, settings=settings)
    shutil.rmtree(app / "node_modules")  # a clean checkout: what git push sends
    lines: list[str] = []
    slug = build(app, settings, app="front", emit=lines.append)
    assert any("Installing Node.js packages with npm ci" in line for line in lines)
    assert any("Running npm run build" in line for line in lines)
    assert not (slug.path / "node_modules").exists()
    with running_process(slug) as (port, process):
        page = wait_for_http(f"http://127.0.0.1:{port}/", process=process)
        assert page.status_code == 200 and f'src="/{BUNDLE}"' in page.text
        script = wait_for_http(f"http://127.0.0.1:{port}/{BUNDLE}", process=process)
        assert script.status_code == 200
        assert "bundled for ${name}" in script.text and "import " not in script.text
    again: list[str] = []
    build(app, settings, app="front", emit=again.append)
    assert any("Using cached node_modules" in line for line in again)
    assert not any("npm ci" in line for line in again)  # no installer ran
    write(app, {"pyproject.toml": "[tool.corral]\nkeep-node-modules = true\n"})
    kept = build(app, settings, app="front", emit=lambda line: None)
    assert (kept.path / "node_modules" / ".bin" / "esbuild").exists()
