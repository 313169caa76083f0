"""``corral new --template flask|django|fastapi [--frontend]``: each starter passes its own
tests under ``corral local:run pytest`` and deploys with one ``git push``, nothing edited,
to a real ``corral server`` that serves it (one server for the module)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.server import Server, git, running_server
from support.wait import wait_until

#: (template, --frontend, a line the page shows)
STARTERS = [
    ("flask", True, "Hello from flask-starter!"),
    ("django", True, "Hello from django-starter!"),
    ("fastapi", False, "Hello from fastapi-starter!"),
]


def corral(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return subprocess.run(
        [sys.executable, "-m", "corral", *args], cwd=cwd, capture_output=True, text=True,
        timeout=400, env={**env, "CORRAL_HOME": str(home)},
    )  # fmt: skip


def test_an_unknown_template_is_refused(tmp_path: Path) -> None:
    result = corral("new", "x", "--template", "rails", cwd=tmp_path, home=tmp_path / "home")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "'rails' is not one of 'flask', 'django', 'fastapi'" in result.stderr
    assert not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, corral_home: Path) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("starters"), corral_home) as running:
        yield running


def get(server: Server, app: str, path: str) -> httpx.Response:
    url = f"http://127.0.0.1:{server.port}{path}"
    return httpx.get(url, headers={"Host": f"{app}.localhost"}, timeout=10)


@pytest.mark.slow
@pytest.mark.parametrize(("template", "frontend", "shown"), STARTERS)
def test_each_starter_passes_its_tests_and_deploys_with_one_push(
    tmp_path: Path, server: Server, template: str, frontend: bool, shown: str
) -> None:
    name = f"{template}-starter"
    made = corral("new", name, "--template", template, *(["--frontend"] * frontend),
                  cwd=tmp_path, home=server.home)  # fmt: skip
    assert made.returncode == 0, made.stderr
    project = tmp_path / name
    tests = corral("local:run", "pytest", "-q", "-p", "no:cacheprovider", cwd=project,
                   home=server.home)  # fmt: skip
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout and "warning" not in tests.stdout

    server.api.post("/apps", json={"name": name}).raise_for_status()
    database = tmp_path / "attached.sqlite3"
    if template == "django":  # what an add-on would set (and no database in this host's HOME)
        config = {"DATABASE_URL": f"sqlite:///{database}"}
        server.api.patch(f"/apps/{name}/config", json=config).raise_for_status()
    git(project, "remote", "add", "corral", server.git_url(name))
    push = git(project, "push", "corral", "main", check=False)
    assert push.returncode == 0, push.stderr
    wait_until(lambda: get(server, name, "/").status_code == 200, 60, message=f"{name} serves")
    page = get(server, name, "/").text
    assert shown in page
    if template == "django":  # the release phase migrated; WhiteNoise serves the static files
        assert "Applying auth.0001_initial" in push.stderr, push.stderr
        assert database.stat().st_size > 0  # migrated where DATABASE_URL said
        css = re.search(r'href="(/static/site\.[0-9a-f]+\.css)"', page)
        assert css and get(server, name, css.group(1)).status_code == 200
    if frontend:
        assert "Running npm run build" in push.stderr
        src = re.search(r'src="([^"]*bundle[^"]*\.js)"', page)
        assert src, page
        bundle = get(server, name, src.group(1))
        assert bundle.status_code == 200 and "bundled by esbuild" in bundle.text
        assert "import " not in bundle.text  # one file, its imports bundled in
