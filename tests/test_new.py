"""``corral new``: the project it writes, the names and places it refuses, and that the app runs.

Everything goes through the real CLI in a subprocess; the slow test installs the scaffold's
requirements into a real virtualenv, runs its own tests and serves it with gunicorn.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest
from uv import find_uv_bin

from corral.errors import UserError
from corral.scaffold import validate_name, validate_python
from support.processes import free_port
from support.wait import wait_for_http

RUNNING_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
#: Shared between runs so the slow test installs from a warm cache.
UV_CACHE = Path(tempfile.gettempdir()) / "corral-test-uv-cache"
PROJECT_FILES = {
    ".env.example",
    ".gitignore",
    ".python-version",
    "Procfile",
    "README.md",
    "app.py",
    "pytest.ini",
    "requirements.txt",
    "static/app.js",
    "templates/base.html",
    "templates/index.html",
    "tests/conftest.py",
    "tests/test_app.py",
}


def _environ(**overrides: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CORRAL_")}
    env.pop("VIRTUAL_ENV", None)
    env.update(overrides)
    return env


def _corral(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral", *args],
        cwd=cwd,
        env=env or _environ(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=repo,
        env=env or _environ(),
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout.strip()


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (outside .git) with its content."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and ".git" not in path.relative_to(root).parts
    }


@pytest.mark.parametrize("name", ["demo", "d", "hello-world", "My_App2", "a" * 64])
def test_validate_name_accepts_directory_safe_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "../x", "a/b", "..", ".", ".hidden", "-x", "1app", "a b", "a" * 65, "demo\n", "é"],
)
def test_validate_name_rejects_paths_and_odd_names(name: str) -> None:
    with pytest.raises(UserError, match="not a valid project name"):
        validate_name(name)


@pytest.mark.parametrize("version", ["3.9", "3.12", "3.13.1"])
def test_validate_python_accepts_supported_versions(version: str) -> None:
    assert validate_python(version) == version


@pytest.mark.parametrize("version", ["2.7", "3.8", "3", "banana", "3.12 ", ""])
def test_validate_python_rejects_unusable_versions(version: str) -> None:
    with pytest.raises(UserError, match="not a Python version"):
        validate_python(version)


def test_new_creates_flask_project_with_one_commit_on_main(tmp_path: Path) -> None:
    result = _corral("new", "demo", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    project = tmp_path / "demo"
    files = _tree(project)
    assert set(files) == PROJECT_FILES
    assert files["Procfile"] == b"web: gunicorn app:app\n"
    assert files[".python-version"].decode() == f"{RUNNING_PYTHON}\n"
    for package in ("flask>=3.0,<4", "gunicorn", "bootstrap-flask", "python-dotenv", "pytest"):
        assert package in files["requirements.txt"].decode()
    assert b"Flask" in files["app.py"] and b"Bootstrap5" in files["app.py"]
    assert b"corral apps:create demo" in files["README.md"]
    assert not [path for path, content in files.items() if b"__PROJECT_NAME__" in content]
    assert list(tmp_path.iterdir()) == [project], "no staging directory is left behind"

    assert _git(project, "symbolic-ref", "--short", "HEAD") == "main"
    assert _git(project, "rev-list", "--count", "HEAD") == "1"
    assert _git(project, "status", "--porcelain") == ""
    assert "cd demo" in result.stdout and "corral local" in result.stdout


def test_new_writes_the_requested_python_version(tmp_path: Path) -> None:
    result = _corral("new", "demo", "--python", "3.12", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "demo" / ".python-version").read_text() == "3.12\n"


def test_new_fills_an_existing_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()

    result = _corral("new", "demo", "--no-git", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert set(_tree(tmp_path / "demo")) == PROJECT_FILES


def test_new_refuses_a_non_empty_directory_and_leaves_it_untouched(tmp_path: Path) -> None:
    existing = tmp_path / "demo"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine\n")

    result = _corral("new", "demo", cwd=tmp_path)

    assert result.returncode == 1
    assert "demo/ already exists and is not empty" in result.stderr
    assert "Traceback" not in result.stderr
    assert _tree(existing) == {"notes.txt": b"mine\n"}
    assert list(tmp_path.iterdir()) == [existing]


def test_new_refuses_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "demo").write_text("mine\n")

    result = _corral("new", "demo", cwd=tmp_path)

    assert result.returncode == 1
    assert "is not a directory" in result.stderr
    assert (tmp_path / "demo").read_text() == "mine\n"


@pytest.mark.parametrize("args", [["../x"], ["a/b"], [""], ["--", "-x"], ["1app"], ["a b"]])
def test_new_refuses_invalid_names_and_writes_nothing(tmp_path: Path, args: list[str]) -> None:
    # Work one level down, so an escape through "../x" would show up in tmp_path.
    cwd = tmp_path / "work"
    cwd.mkdir()

    result = _corral("new", *args, cwd=cwd)

    assert result.returncode == 1
    assert "is not a valid project name" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(cwd.iterdir()) == []
    assert list(tmp_path.iterdir()) == [cwd]


def test_new_treats_a_dash_name_as_an_unknown_option(tmp_path: Path) -> None:
    result = _corral("new", "-x", cwd=tmp_path)

    assert result.returncode == 2
    assert "No such option" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_new_refuses_an_unusable_python_and_writes_nothing(tmp_path: Path) -> None:
    result = _corral("new", "demo", "--python", "2.7", cwd=tmp_path)

    assert result.returncode == 1
    assert "not a Python version" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_new_with_no_git_creates_no_repository(tmp_path: Path) -> None:
    result = _corral("new", "demo", "--no-git", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "demo" / ".git").exists()
    assert set(_tree(tmp_path / "demo")) == PROJECT_FILES


def test_new_commits_without_a_git_identity_and_leaves_config_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = _environ(HOME=str(home), GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        env.pop(key, None)
    work = tmp_path / "work"
    work.mkdir()

    result = _corral("new", "demo", cwd=work, env=env)

    assert result.returncode == 0, result.stderr
    project = work / "demo"
    assert _git(project, "log", "--format=%an <%ae>", env=env) == "corral <corral@localhost>"
    identity = subprocess.run(
        ["git", "config", "user.name"], cwd=project, env=env, capture_output=True, timeout=30
    )
    assert identity.returncode == 1, "the fallback identity is for the first commit only"


@pytest.mark.slow
def test_scaffolded_app_passes_its_tests_and_serves_pages_with_gunicorn(tmp_path: Path) -> None:
    assert _corral("new", "demo", "--no-git", cwd=tmp_path).returncode == 0
    project, venv = tmp_path / "demo", tmp_path / "venv"
    uv_env = _environ(UV_CACHE_DIR=str(UV_CACHE))
    uv, python = find_uv_bin(), str(venv / "bin" / "python")
    for command in (
        [uv, "venv", "--quiet", "--python", sys.executable, str(venv)],
        [uv, "pip", "install", "--quiet", "--python", python, "-r", "requirements.txt"],
    ):
        subprocess.run(command, cwd=project, env=uv_env, check=True, timeout=300)
    app_env = _environ(
        PATH=os.pathsep.join([str(venv / "bin"), os.environ.get("PATH", os.defpath)]),
        VIRTUAL_ENV=str(venv),
        GREETING="Hello from the gunicorn test!",
    )
    app_env.pop("PYTHONPATH", None)

    tests = subprocess.run(
        [str(venv / "bin" / "pytest"), "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=app_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr

    # Run the Procfile's web command the way the platform does: bind address in the environment.
    port = free_port()
    web_command = (project / "Procfile").read_text().removeprefix("web:").strip()
    app_env["GUNICORN_CMD_ARGS"] = f"--bind 127.0.0.1:{port} --workers 1"
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        gunicorn = subprocess.Popen(
            shlex.split(web_command),
            cwd=project,
            env=app_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/", process=gunicorn)
        with httpx.Client(base_url=base, timeout=10) as client:
            page = client.get("/")
            assert page.status_code == 200
            assert "Hello from the gunicorn test!" in page.text
            assert "<title>demo</title>" in page.text

            api = client.get("/api/hello")
            assert api.status_code == 200
            assert api.headers["content-type"] == "application/json"
            assert api.json()["message"] == "Hello from the gunicorn test!"
            assert "time" in api.json()

            css = re.search(r'<link rel="stylesheet" href="([^"]+\.css)"', page.text)
            assert css, page.text
            assert css.group(1).startswith("/"), "Bootstrap is served by the app, not a CDN"
            stylesheet = client.get(css.group(1))
            assert stylesheet.status_code == 200
            assert stylesheet.headers["content-type"].startswith("text/css")

            script = client.get("/static/app.js")
            assert script.status_code == 200
            assert "fetch(" in script.text
    except AssertionError:
        print(log_path.read_text(errors="replace"))
        raise
    finally:
        gunicorn.terminate()
        try:
            gunicorn.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(gunicorn.pid, signal.SIGKILL)
            gunicorn.wait()


def test_new_refuses_a_python_that_is_not_installed(tmp_path: Path) -> None:
    result = _corral("new", "demo", "--python", "3.99", cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr.startswith("error: Python 3.99 is not installed on this host (installed: ")
    assert f"{RUNNING_PYTHON}" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "demo").exists()
