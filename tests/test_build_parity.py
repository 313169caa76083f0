"""The rest of Heroku's Python buildpack: ``bin/pre_compile``, the warning about an older
patch release, and requirements files using ``-r``, ``-c``, ``--hash`` and ``-e .``."""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from packaging.version import Version

from corral.builder import build
from corral.builder.environment import uv_bin
from corral.builder.python import Interpreter, installed_interpreters, newer_patch
from corral.config import Settings
from support.processes import served_text
from support.sources import write

pytestmark = pytest.mark.slow

APP = """
import flask, sys
from flask import Flask
import mypkg

app = Flask(__name__)

@app.get("/")
def index():
    return f"{mypkg.NAME} flask {flask.__version__}"
"""
PROJECT = """
[project]
name = "mypkg"
version = "0.1"
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
"""


@pytest.fixture
def settings(corral_home: Path) -> Settings:
    return Settings.load(corral_home)


def test_pre_compile_runs_before_the_install(tmp_path: Path, settings: Settings) -> None:
    hook = "#!/bin/sh\necho gunicorn >> requirements.txt\necho pre_compile ran\n"
    files = {"requirements.txt": "six\n", "bin/pre_compile": hook, "Procfile": "web: gunicorn x\n"}
    app = write(tmp_path / "pre", files)
    (app / "bin" / "pre_compile").chmod(0o755)
    lines: list[str] = []
    slug = build(app, settings, emit=lines.append)
    ran = next(i for i, line in enumerate(lines) if "pre_compile ran" in line)
    assert ran < next(i for i, line in enumerate(lines) if "Detected Python app" in line)
    assert any(line.startswith("gunicorn==") for line in slug.freeze)


def test_an_older_patch_than_the_newest_installed_is_warned_about() -> None:
    def interp(version: str) -> Interpreter:
        return Interpreter(Version(version), Path(f"/py/{version}"))

    found = (interp("3.12.1"), interp("3.11.7"), interp("3.11.2"))
    assert newer_patch(interp("3.11.2"), found) == interp("3.11.7")
    assert newer_patch(interp("3.11.7"), found) is None
    assert newer_patch(interp("3.12.1"), found) is None


def test_a_build_on_an_older_patch_says_which_is_newest(tmp_path: Path, settings: Settings) -> None:
    real = installed_interpreters(tmp_path / "no-pyenv", uv_bin())[0]  # on PATH, or uv's
    major, minor, patch = real.version.release[:3]
    newer = tmp_path / "pyenv" / "versions" / f"{major}.{minor}.{patch + 1}" / "bin"
    newer.mkdir(parents=True)
    (newer / "python3").write_text(f'#!/bin/sh\nexec {real.executable} "$@"\n')
    (newer / "python3").chmod(0o755)  # a newer patch release, where pyenv would put one
    files = {"requirements.txt": "six\n", ".python-version": f"{real.version}\n"}
    app = write(tmp_path / "old", {**files, "Procfile": "web: python -m http.server $PORT\n"})
    slug = build(app, replace(settings, pyenv_root=tmp_path / "pyenv"), emit=lambda line: None)
    assert slug.python_version == str(real.version)
    expected = f"older than {major}.{minor}.{patch + 1}, the newest {major}.{minor} on this host"
    assert any(expected in warning for warning in slug.warnings), slug.warnings


def test_requirements_with_includes_constraints_and_the_project_itself(
    tmp_path: Path, settings: Settings
) -> None:
    app = write(
        tmp_path / "req",
        {
            "requirements.txt": "-r requirements/base.txt\n-c requirements/constraints.txt\n-e .\n",
            "requirements/base.txt": "flask\ngunicorn\n",
            "requirements/constraints.txt": "flask==3.0.3\n",
            "pyproject.toml": PROJECT,
            "mypkg/__init__.py": 'NAME = "mypkg"\n',
            "app.py": APP,
            "Procfile": "web: gunicorn app:app\n",
        },
    )
    slug = build(app, settings, emit=lambda line: None)
    assert served_text(slug) == "mypkg flask 3.0.3"
    # installed into the environment itself, not as a link to the build's work directory
    check = subprocess.run(
        [str(slug.env_path / "bin" / "python"), "-c", "import mypkg; print(mypkg.__file__)"],
        cwd="/", capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith(str(slug.env_path))


def test_hashed_requirements_install(tmp_path: Path, settings: Settings) -> None:
    app_py = APP.replace("import mypkg", "mypkg = sys; sys.NAME = 'hashed'")
    files = {"requirements.in": "flask==3.0.3\ngunicorn\n", "app.py": app_py}
    app = write(tmp_path / "hashed", {**files, "Procfile": "web: gunicorn app:app\n"})
    compile_ = [uv_bin(), "pip", "compile", "--quiet", "--generate-hashes", "requirements.in"]
    env = {**os.environ, "UV_CACHE_DIR": str(settings.cache_dir / "uv")}
    subprocess.run([*compile_, "-o", "requirements.txt"], cwd=app, env=env, check=True)
    assert "--hash=sha256:" in (app / "requirements.txt").read_text()
    slug = build(app, settings, emit=lambda line: None)
    assert "flask==3.0.3" in slug.freeze
    assert served_text(slug).endswith("flask 3.0.3")
