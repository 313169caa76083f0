"""Lock files of Poetry, Pipenv and pylock.toml, each made by its own tool, installed exactly:
the deployed versions are the locked ones, dev groups stay out, a stale lock fails."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from corral.builder import build
from corral.builder.environment import uv_bin
from corral.builder.log import BuildLog
from corral.builder.python import Interpreter, find_interpreter, installed_interpreters
from corral.builder.python import python_request as request_for
from corral.builder.tools import ensure_tool
from corral.config import Settings
from support.cli import run_corral
from support.processes import served_text
from support.sources import write

pytestmark = pytest.mark.slow

#: An app printing the Flask it runs, and whether a dev-only package came along.
APP = """
import importlib.util
from importlib.metadata import version
from flask import Flask

app = Flask(__name__)

@app.get("/")
def index():
    return f"flask {version('flask')} six {importlib.util.find_spec('six') is not None}"
"""


@pytest.fixture(scope="module")
def settings(corral_home: Path) -> Settings:
    return Settings.load(corral_home)


@pytest.fixture(scope="module")
def python(settings: Settings) -> Interpreter:
    """The interpreter the tools run on and the apps ask for (the host's default)."""
    request = request_for(Path("/nonexistent"), {}, settings.default_python)
    return find_interpreter(request, installed_interpreters(settings.pyenv_root, uv_bin()))


def tool_env(settings: Settings, tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "POETRY_CACHE_DIR": str(settings.cache_dir / "poetry"),
        "POETRY_VIRTUALENVS_PATH": str(tmp / "venvs"),
        "PIPENV_CACHE_DIR": str(settings.cache_dir / "pipenv"),
        "WORKON_HOME": str(tmp / "venvs"),
        "PIPENV_NOSPIN": "1",
        "PIPENV_YES": "1",
        "UV_CACHE_DIR": str(settings.cache_dir / "uv"),
    }


def run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def poetry_app(tmp_path_factory, settings: Settings, python: Interpreter) -> Path:
    """``poetry new`` + ``poetry add``: Flask locked at 3.0.3 while pyproject.toml allows
    any 3.x (Poetry 2's ``poetry lock`` keeps locked versions that still fit), and a dev
    group holding six."""
    tmp = tmp_path_factory.mktemp("poetry")
    poetry = str(ensure_tool(settings, "poetry", python, BuildLog(lambda line: None)))
    env = tool_env(settings, tmp)
    run([poetry, "new", "--python", f">={python.version.major}.{python.version.minor}", "web"],
        tmp, env)  # fmt: skip
    app = tmp / "web"
    (app / ".python-version").write_text(f"{python.version}\n")
    run([poetry, "add", "--lock", "flask==3.0.3", "gunicorn"], app, env)
    run([poetry, "add", "--lock", "--group", "dev", "six"], app, env)
    pyproject = app / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"flask (==3.0.3)"', '"flask (>=3.0,<4)"'))
    run([poetry, "lock"], app, env)
    assert 'name = "flask"\nversion = "3.0.3"' in (app / "poetry.lock").read_text()
    write(app, {"src/web/__init__.py": APP, "Procfile": "web: gunicorn web:app\n"})
    return app


def test_poetry_app_runs_the_locked_flask_and_no_dev_group(
    poetry_app: Path, settings: Settings
) -> None:
    lines: list[str] = []
    slug = build(poetry_app, settings, emit=lines.append)
    assert any("Detected Python app (poetry.lock)" in line for line in lines)
    assert "flask==3.0.3" in slug.freeze
    assert not any(line.startswith("six==") for line in slug.freeze)
    assert slug.pythonpath  # the project itself went into the slug, as for any package
    assert served_text(slug) == "flask 3.0.3 six False"
    again: list[str] = []
    rebuilt = build(poetry_app, settings, emit=again.append)
    assert rebuilt.env_hash == slug.env_hash
    assert any("Using cached environment" in line for line in again)
    assert not any("+ flask==" in line for line in again)  # no installer ran


def test_a_poetry_lock_out_of_date_fails_with_poetrys_message(
    poetry_app: Path, tmp_path: Path, settings: Settings
) -> None:
    stale = Path(shutil.copytree(poetry_app, tmp_path / "stale"))
    pyproject = stale / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('"flask (>=3.0,<4)"', '"flask (>=3.0,<4)", "six"')
    )
    result = run_corral("build", str(stale), home=settings.home)
    assert result.returncode == 1, result.stdout
    assert "changed significantly since poetry.lock was last generated" in result.stderr
    assert "Run `poetry lock`" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.fixture(scope="module")
def pipenv_app(tmp_path_factory, settings: Settings, python: Interpreter) -> Path:
    """``pipenv install``: Flask 3.0.3 and gunicorn by default, six as a dev package."""
    tmp = tmp_path_factory.mktemp("pipenv")
    pipenv = str(ensure_tool(settings, "pipenv", python, BuildLog(lambda line: None)))
    app = write(tmp / "web", {"app.py": APP, "Procfile": "web: gunicorn app:app\n"})
    env = tool_env(settings, tmp)
    run([pipenv, "install", "--python", str(python.executable), "flask==3.0.3", "gunicorn"],
        app, env)  # fmt: skip
    run([pipenv, "install", "--dev", "six"], app, env)
    return app


def test_pipenv_app_installs_the_default_packages_of_its_lock(
    pipenv_app: Path, settings: Settings
) -> None:
    lines: list[str] = []
    slug = build(pipenv_app, settings, emit=lines.append)
    assert any("Detected Python app (Pipfile.lock)" in line for line in lines)
    assert "flask==3.0.3" in slug.freeze
    assert served_text(slug) == "flask 3.0.3 six False"
    again: list[str] = []
    assert build(pipenv_app, settings, emit=again.append).env_hash == slug.env_hash
    assert any("Using cached environment" in line for line in again)


def test_a_pipfile_lock_out_of_date_fails_saying_pipenv_lock(
    pipenv_app: Path, tmp_path: Path, settings: Settings
) -> None:
    stale = Path(shutil.copytree(pipenv_app, tmp_path / "stale"))
    with (stale / "Pipfile").open("a") as pipfile:
        pipfile.write('\n[packages.requests]\nversion = "*"\n')
    result = run_corral("build", str(stale), home=settings.home)
    assert result.returncode == 1, result.stdout
    assert "pipenv lock" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_pylock_from_uv_export_installs_as_locked(tmp_path: Path, settings: Settings) -> None:
    app = write(
        tmp_path / "pyl",
        {
            "pyproject.toml": """
                [project]
                name = "pyl"
                version = "0.1.0"
                requires-python = ">=3.9"
                dependencies = ["flask>=3.0,<4", "gunicorn"]
                [build-system]
                requires = ["hatchling"]
                build-backend = "hatchling.build"
            """,
            "pyl/__init__.py": APP,
            "Procfile": "web: gunicorn pyl:app\n",
        },
    )
    env = tool_env(settings, tmp_path)
    run([uv_bin(), "lock", "--upgrade-package", "flask==3.0.3"], app, env)
    run([uv_bin(), "export", "--quiet", "--format", "pylock.toml", "-o", "pylock.toml"], app, env)
    (app / "uv.lock").unlink()  # an app deploying the exported lock alone
    lines: list[str] = []
    slug = build(app, settings, emit=lines.append)
    assert any("Detected Python app (pylock.toml)" in line for line in lines)
    assert "flask==3.0.3" in slug.freeze
    assert not any(line.startswith("pyl") for line in slug.freeze)  # the project: in the slug
    assert served_text(slug) == "flask 3.0.3 six False"
