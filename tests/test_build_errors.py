"""Bad input to `corral build` gets one clear line, a non-zero exit, and changes nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.cli import run_corral
from support.wait import wait_until

pytestmark = pytest.mark.slow

FLASK = "from flask import Flask\napp = Flask(__name__)\n"


def make_app(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def assert_refused(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: ")
    for fragment in fragments:
        assert fragment in result.stdout + result.stderr


def assert_nothing_built(home: Path, app: str) -> None:
    slugs = home / "apps" / app / "slugs"
    assert not slugs.exists() or not [p for p in slugs.iterdir() if not p.name.startswith(".")]
    assert not slugs.exists() or not list(slugs.glob(".building-*"))
    envs = home / "envs"
    if envs.exists():
        for env in envs.iterdir():
            if env.is_dir():
                assert (env / ".corral-complete").exists(), f"half-built environment {env}"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A home of its own, so 'changes nothing' can be checked; shares the session's uv cache."""
    return tmp_path / "home"


def test_empty_directory(tmp_path: Path, home: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert_refused(run_corral("build", str(tmp_path / "empty"), home=home), "is empty")
    assert_nothing_built(home, "empty")


def test_missing_directory(tmp_path: Path, home: Path) -> None:
    result = run_corral("build", str(tmp_path / "nope"), home=home)
    assert result.returncode != 0 and "Traceback" not in result.stderr


def test_no_app_detected(tmp_path: Path, home: Path) -> None:
    app = make_app(tmp_path / "plain", {"index.html": "<p>hi</p>"})
    assert_refused(run_corral("build", str(app), home=home), "No Python app detected")
    assert_nothing_built(home, "plain")


def test_a_pipfile_without_its_lock_says_how_to_make_one(tmp_path: Path, home: Path) -> None:
    app = make_app(tmp_path / "unlocked", {"Pipfile": '[packages]\nflask = "*"\n', "app.py": FLASK})
    assert_refused(run_corral("build", str(app), home=home), "no Pipfile.lock", "`pipenv lock`")
    assert_nothing_built(home, "unlocked")


def test_lock_files_of_two_tools_are_refused_naming_both(tmp_path: Path, home: Path) -> None:
    files = {"poetry.lock": "", "Pipfile.lock": "{}", "pyproject.toml": "[tool.poetry]\n"}
    app = make_app(tmp_path / "both", {**files, "app.py": FLASK})
    result = run_corral("build", str(app), home=home)
    assert_refused(result, "poetry.lock (Poetry) and Pipfile.lock (Pipenv)", "delete the ones")
    assert_nothing_built(home, "both")


def test_a_poetry_lock_without_its_pyproject_is_refused(tmp_path: Path, home: Path) -> None:
    app = make_app(tmp_path / "alone", {"poetry.lock": "", "app.py": FLASK})
    assert_refused(run_corral("build", str(app), home=home), "poetry.lock needs a pyproject.toml")


def test_unknown_python_version_lists_installed(tmp_path: Path, home: Path) -> None:
    app = make_app(
        tmp_path / "py",
        {"requirements.txt": "flask\n", "app.py": FLASK, ".python-version": "3.99\n"},
    )
    assert_refused(run_corral("build", str(app), home=home), "installed versions:")
    assert_nothing_built(home, "py")


def test_requirement_that_does_not_exist_shows_installer_output(tmp_path: Path, home: Path) -> None:
    app = make_app(
        tmp_path / "bad",
        {"requirements.txt": "flask\nthis-package-does-not-exist-corral-test\n", "app.py": FLASK},
    )
    result = run_corral("build", str(app), home=home)
    assert_refused(result, "this-package-does-not-exist-corral-test", "failed (exit status")
    assert "not found in the package registry" in result.stdout or "No solution" in result.stdout
    assert_nothing_built(home, "bad")


def test_requirement_that_does_not_resolve(tmp_path: Path, home: Path) -> None:
    app = make_app(
        tmp_path / "conflict", {"requirements.txt": "flask==3.0.0\nflask==2.0.0\n", "app.py": FLASK}
    )
    assert_refused(run_corral("build", str(app), home=home), "flask")
    assert_nothing_built(home, "conflict")


def test_malformed_procfile_fails_before_installing(tmp_path: Path, home: Path) -> None:
    app = make_app(
        tmp_path / "proc",
        {"requirements.txt": "flask\n", "app.py": FLASK, "Procfile": "web: ok\nnonsense\n"},
    )
    result = run_corral("build", str(app), home=home)
    assert_refused(result, "Procfile line 2")
    assert "Installing" not in result.stdout and not (home / "envs").exists()
    assert_nothing_built(home, "proc")


def test_non_utf8_file_name(tmp_path: Path, home: Path) -> None:
    app = make_app(tmp_path / "names", {"requirements.txt": "flask\n", "app.py": FLASK})
    with open(os.fsencode(app) + b"/r\xe9sum\xe9.txt", "w") as handle:
        handle.write("x")
    assert_refused(run_corral("build", str(app), home=home), "not valid UTF-8")
    assert_nothing_built(home, "names")


def test_symlink_outside_is_not_followed(tmp_path: Path, corral_home: Path) -> None:
    (tmp_path / "secret").write_text("s3cret")
    app = make_app(tmp_path / "links", {"requirements.txt": "flask\ngunicorn\n", "app.py": FLASK})
    os.symlink(tmp_path / "secret", app / "secret")
    result = run_corral("build", str(app), "--json", home=corral_home)
    assert result.returncode == 0, result.stderr
    slug = Path(json.loads(result.stdout)["path"])
    assert not (slug / "secret").exists() and not (slug / "secret").is_symlink()
    assert "links outside the source tree" in result.stderr


def test_unknown_installer_is_refused(tmp_path: Path, home: Path) -> None:
    app = make_app(
        tmp_path / "inst",
        {"requirements.txt": "flask\n", "app.py": FLASK,
         "pyproject.toml": '[tool.corral]\ninstaller = "conda"\n'},
    )  # fmt: skip
    assert_refused(run_corral("build", str(app), home=home), "Unknown installer 'conda'")


def test_half_built_environment_is_rebuilt(tmp_path: Path, corral_home: Path) -> None:
    app = make_app(
        tmp_path / "half", {"requirements.txt": "flask\ngunicorn\n# half\n", "app.py": FLASK}
    )
    first = run_corral("build", str(app), "--json", home=corral_home)
    env = Path(json.loads(first.stdout)["env_path"])
    # what a build killed mid-install leaves: the directory without its completion marker
    (env / ".corral-complete").unlink()
    (env / "bin" / "python").unlink()
    second = run_corral("build", str(app), "--json", home=corral_home)
    assert second.returncode == 0, second.stderr
    assert "half-built" in second.stderr
    assert (env / ".corral-complete").exists()
    subprocess.run([str(env / "bin" / "python"), "-c", "import flask"], check=True)


def test_killed_build_leaves_nothing_and_next_build_works(tmp_path: Path, home: Path) -> None:
    started = tmp_path / "hook-started"
    app = make_app(
        tmp_path / "killed",
        {
            "requirements.txt": "flask\ngunicorn\n",
            "app.py": FLASK,
            "bin/post_compile": f"touch {started}\nsleep 60\n",
        },
    )
    env = {**os.environ, "CORRAL_HOME": str(home)}
    process = subprocess.Popen(
        [sys.executable, "-m", "corral", "build", str(app)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def building() -> None:
        assert process.poll() is None, f"the build exited with {process.returncode}"

    wait_until(started.exists, 120, interval=0.05, message="post_compile", check=building)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    slugs = home / "apps" / "killed" / "slugs"
    assert list(slugs.glob(".building-*")), "the killed build left its work directory"
    (app / "bin" / "post_compile").write_text("echo compiled\n")
    result = run_corral("build", str(app), home=home)
    assert result.returncode == 0, result.stderr
    assert "compiled" in result.stdout
    assert not list(slugs.glob(".building-*"))
    assert len(list(slugs.iterdir())) == 1


def test_two_builds_of_one_environment_at_once(tmp_path: Path, corral_home: Path) -> None:
    app = make_app(
        tmp_path / "race",
        {"requirements.txt": f"flask\ngunicorn\n# {time.time()}\n", "app.py": FLASK},
    )
    env = {**os.environ, "CORRAL_HOME": str(corral_home)}
    command = [sys.executable, "-m", "corral", "build", str(app), "--json"]
    runs = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    envs = {json.loads(out)["env_path"] for out, _ in outputs}
    assert len(envs) == 1
    installs = sum("Installed" in err for _, err in outputs)
    cached = sum("Using cached environment" in err for _, err in outputs)
    assert (installs, cached) == (1, 1)
    assert (Path(envs.pop()) / ".corral-complete").exists()
