"""Config vars reach the build (installers, collectstatic, bin/post_compile), and their
values never reach its output, its log or a file name."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from corral.builder.log import hidden_values, hide
from support.cli import run_corral
from support.processes import free_port
from support.server import Server, git
from support.wait import wait_until

pytestmark = pytest.mark.slow

TOKEN = "s3cr3t-index-token-4f9a"


def test_config_values_are_shown_by_name_and_url_passwords_masked() -> None:
    hidden = hidden_values(
        {
            "UV_INDEX_URL": f"https://{TOKEN}@pypi.example/simple",
            "PIP_EXTRA_INDEX_URL": "https://ci:hunter2hunter2@idx.example/simple",
            "DEBUG": "1",
        }
    )
    assert hide(f"GET https://{TOKEN}@pypi.example/simple/flask/", hidden) == (
        "GET $UV_INDEX_URL/flask/"
    )
    assert hide(f"Looking in https://****@pypi.example and {TOKEN}", hidden) == (
        "Looking in https://****@pypi.example and ****"
    )
    assert hide("https://ci:hunter2hunter2@idx.example/simple/x", hidden) == (
        "$PIP_EXTRA_INDEX_URL/x"
    )
    assert hide("DEBUG is 1", hidden) == "DEBUG is 1"  # short values would garble output


def _wheel(directory: Path, name: str, version: str) -> Path:
    """A minimal pure-Python wheel of a module ``name`` holding ``VERSION``."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VERSION = {version!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


@pytest.fixture
def private_index(tmp_path: Path) -> Iterator[str]:
    """A PEP 503 index on loopback holding only ``corral_private_pkg``; yields its URL."""
    root = tmp_path / "index"
    project = root / "simple" / "corral-private-pkg"
    project.mkdir(parents=True)
    wheel = _wheel(project, "corral_private_pkg", "1.0")
    (project / "index.html").write_text(f'<a href="{wheel.name}">{wheel.name}</a>\n')
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
         "--directory", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def answers() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/simple/").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(answers, 20, interval=0.05, message="the private index")
        yield f"http://{TOKEN}@127.0.0.1:{port}/simple"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_installers_use_a_private_index_from_config_without_printing_it(
    tmp_path: Path, private_index: str
) -> None:
    app = tmp_path / "private"
    app.mkdir()
    (app / "requirements.txt").write_text("corral-private-pkg\n")
    (app / "Procfile").write_text("web: python -m http.server $PORT\n")
    home = tmp_path / "home"  # its own, so every file it holds can be searched for the token
    built = run_corral(
        "build", str(app), "--env", f"UV_INDEX_URL={private_index}", "--json", home=home
    )
    assert built.returncode == 0, built.stdout + built.stderr
    slug = json.loads(built.stdout)
    assert "corral-private-pkg==1.0" in slug["freeze"]
    assert TOKEN not in built.stdout + built.stderr
    for path in home.rglob("*"):
        assert TOKEN not in str(path)
        if path.is_file() and not path.is_symlink():
            assert TOKEN.encode() not in path.read_bytes(), f"the token is in {path}"
    # another index (here: other credentials) is another environment, never a shared one
    other = private_index.replace(TOKEN, "another-token-0000")
    again = run_corral("build", str(app), "--env", f"UV_INDEX_URL={other}", "--json", home=home)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["env_hash"] != slug["env_hash"]


def test_build_env_that_is_not_an_assignment_is_refused(tmp_path: Path) -> None:
    result = run_corral("build", str(tmp_path), "--env", "DISABLE_COLLECTSTATIC", home=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "error: 'DISABLE_COLLECTSTATIC' is not KEY=value; write config vars like "
        "`corral build --env DISABLE_COLLECTSTATIC=1`."
    )


APP = """from pathlib import Path
from flask import Flask
app = Flask(__name__)

@app.get("/")
def index():
    return Path("seen-at-build.txt").read_text()
"""

POST_COMPILE = """echo "post_compile sees BUILD_SECRET=$BUILD_SECRET"
printf %s "$BUILD_SECRET" > seen-at-build.txt
"""


def test_pushed_build_sees_config_vars_and_never_prints_them(server: Server, tmp_path) -> None:
    secret = "a-build-secret-7c1e9d"
    server.api.post("/apps", json={"name": "cfg"}).raise_for_status()
    server.api.patch("/apps/cfg/config", json={"BUILD_SECRET": secret}).raise_for_status()
    repo = tmp_path / "cfg"
    repo.mkdir()
    (repo / "requirements.txt").write_text("flask\ngunicorn\ndjango>=4.2,<6\n")
    (repo / "manage.py").write_text("raise SystemExit('collectstatic cannot run here')\n")
    (repo / "app.py").write_text(APP)
    (repo / "Procfile").write_text("web: gunicorn app:app\n")
    (repo / "bin").mkdir()
    (repo / "bin" / "post_compile").write_text(POST_COMPILE)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v1")
    git(repo, "remote", "add", "corral", server.git_url("cfg"))

    refused = git(repo, "push", "corral", "main", check=False)
    assert refused.returncode != 0
    assert "set DISABLE_COLLECTSTATIC=1 to skip it" in refused.stderr, refused.stderr

    # the advice of that message works: a config var the build sees
    server.api.patch("/apps/cfg/config", json={"DISABLE_COLLECTSTATIC": "1"}).raise_for_status()
    push = git(repo, "push", "corral", "main", check=False)
    assert push.returncode == 0, push.stderr
    assert "remote:        Skipping collectstatic (DISABLE_COLLECTSTATIC is set)" in push.stderr
    assert "post_compile sees BUILD_SECRET=$BUILD_SECRET" in push.stderr, push.stderr
    assert secret not in push.stderr
    wait_until(lambda: server.app_get("cfg").text == secret, 30, message="the built file served")
    logs = [*(server.home / "builds").iterdir(), *(server.home / "logs" / "cfg").iterdir()]
    assert len(logs) > 2
    for log in logs:
        assert secret not in log.read_text(), f"the secret is in {log}"
