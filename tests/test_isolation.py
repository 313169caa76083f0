"""Apps isolated from each other and from the platform, on a real `corral server` as root.

The attack the issue describes, run as app alpha both through `corral run` and from a web
dyno: every read, write and kill of bravo's or the platform's files, environment and
processes is refused by the kernel, and so is a connection to bravo's dyno.
"""

from __future__ import annotations

import json
import pwd
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from corral.config import Settings
from corral.runtime.cgroups import base_for_home, detect
from corral.store import Store
from corral.store.models import Dyno
from support.cli import corral
from support.isolation import needs_root, unique_prefix, users_removed
from support.server import Server, git, isolated_server, make_repo
from support.wait import wait_until

pytestmark = needs_root
HOST, WHY = detect()

PROBE = '''"""Try everything an app must not be able to do to another app or the platform."""
import json, os, signal, socket, sys


def attempt(action):
    try:
        action()
    except PermissionError:
        return "denied"
    except ConnectionRefusedError:
        return "refused"
    except OSError as error:
        return type(error).__name__
    return "allowed"


def append(path):
    with open(path, "a") as handle:
        handle.write("# changed by another app")


def read(path):
    with open(path, "rb") as handle:
        handle.read(1)


def probe(t):
    return {
        "bravo's environ": attempt(lambda: read(f"/proc/{t['bravo_pid']}/environ")),
        "bravo's slug": attempt(lambda: append(t["bravo_slug_file"])),
        "bravo's hook": attempt(lambda: append(t["bravo_hook"])),
        "kill bravo": attempt(lambda: os.kill(t["bravo_pid"], signal.SIGKILL)),
        "connect to bravo": attempt(
            lambda: socket.create_connection(("127.0.0.1", t["bravo_port"]), 5).close()
        ),
        "the store": attempt(lambda: read(t["store"])),
        "admin token": attempt(lambda: read(t["admin_token"])),
        "dashboard secret": attempt(lambda: read(t["dashboard_secret"])),
        "credentials": attempt(lambda: read(t["credentials"])),
        "route table": attempt(lambda: append(t["routes"])),
        "list the home": attempt(lambda: os.listdir(t["home"])),
        "own slug": attempt(lambda: append(t["own_slug_file"])),
    }


if __name__ == "__main__":
    print("PROBE " + json.dumps(probe(json.loads(sys.argv[1]))))
'''

APP = """import json, os
from flask import Flask, request
import probe

app = Flask(__name__)

@app.get("/")
def index():
    return "hello " + os.environ.get("USER", "?")

@app.get("/probe")
def run_probe():
    return json.dumps(probe.probe(json.loads(request.args["t"])))
"""

#: Prints the user a process runs as and the memory cgroup it is in.
WHO_AND_WHERE = "id -un && (grep :memory: /proc/self/cgroup || grep ^0:: /proc/self/cgroup)"

REFUSED = {
    "bravo's environ": "denied",
    "bravo's slug": "denied",
    "bravo's hook": "denied",
    "kill bravo": "denied",
    "connect to bravo": "refused",
    "the store": "denied",
    "admin token": "denied",
    "dashboard secret": "denied",
    "credentials": "denied",
    "route table": "denied",
    "list the home": "denied",
    "own slug": "denied",
}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with users_removed(unique_prefix()) as prefix, isolated_server(prefix) as server:
        repos = tmp_path_factory.mktemp("repos")
        for app in ("alpha", "bravo"):
            created = corral("apps:create", app, "--no-remote", env=server.env)
            assert created.returncode == 0, created.stderr
            repo = make_repo(repos, server, app)
            (repo / "probe.py").write_text(PROBE)
            (repo / "app.py").write_text(APP)
            (repo / "Procfile").write_text(f"web: gunicorn app:app\nrelease: {WHO_AND_WHERE}\n")
            git(repo, "add", "-A")
            git(repo, "commit", "-qm", "probe")
            pushed = git(repo, "push", "corral", "main", env=server.env, check=False)
            assert pushed.returncode == 0, pushed.stderr
        yield server


def _web(server: Server, app: str) -> Dyno:
    with Store.for_settings(Settings.load(server.home)) as store:
        return next(d for d in store.dynos(app) if d.name == "web.1" and d.state == "up")


def _slug(server: Server, app: str) -> Path:
    with Store.for_settings(Settings.load(server.home)) as store:
        release = store.current_release(app)
    assert release is not None
    return release.slug_path


def _gunicorn(shim_pid: int) -> psutil.Process:
    return psutil.Process(shim_pid).children()[0]


def _targets(server: Server) -> dict:
    home = server.home
    bravo = _web(server, "bravo")
    assert bravo.pid is not None
    return {
        "bravo_pid": _gunicorn(bravo.pid).pid,
        "bravo_port": bravo.port,
        "bravo_slug_file": str(_slug(server, "bravo") / "app.py"),
        "bravo_hook": str(home / "apps" / "bravo" / "repo.git" / "hooks" / "pre-receive"),
        "own_slug_file": str(_slug(server, "alpha") / "app.py"),
        "store": str(home / "corral.db"),
        "admin_token": str(home / "admin-token"),
        "dashboard_secret": str(home / "dashboard-secret"),
        "credentials": server.env["CORRAL_CREDENTIALS"],
        "routes": str(home / "run" / "routes.json"),
        "home": str(home),
    }


def test_each_app_runs_as_its_own_user_never_root(platform: Server):
    for app in ("alpha", "bravo"):
        shim = _web(platform, app).pid
        assert shim is not None and psutil.Process(shim).uids().real == 0  # the platform's
        process = _gunicorn(shim)
        user = pwd.getpwuid(process.uids().real)
        assert user.pw_name.endswith(app) and user.pw_uid != 0
        assert process.uids().effective == user.pw_uid
        env = process.environ()
        assert env["HOME"].startswith(str(platform.home / "users"))
        assert env["TMPDIR"] != env["HOME"] and env["USER"] == user.pw_name
        page = httpx.get(f"http://127.0.0.1:{platform.port}/", headers={"Host": f"{app}.localhost"})
        assert page.text == f"hello {user.pw_name}"


def test_the_attack_through_corral_run_is_refused_at_every_step(platform: Server):
    targets = json.dumps(_targets(platform))
    result = corral(
        "run", "-a", "alpha", "--", "python", "probe.py", targets, env=platform.env, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("PROBE "))
    assert json.loads(line.removeprefix("PROBE ")) == REFUSED


def test_the_attack_from_a_dyno_is_refused_at_every_step(platform: Server):
    answer = httpx.get(
        f"http://127.0.0.1:{platform.port}/probe",
        params={"t": json.dumps(_targets(platform))},
        headers={"Host": "alpha.localhost"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == REFUSED
    # bravo never noticed
    page = httpx.get(f"http://127.0.0.1:{platform.port}/", headers={"Host": "bravo.localhost"})
    assert page.status_code == 200


def test_destroying_an_app_leaves_no_user_group_or_file(platform: Server):
    created = corral("apps:create", "gamma", "--no-remote", env=platform.env)
    assert created.returncode == 0, created.stderr
    users = [u for u in pwd.getpwall() if u.pw_gecos.startswith("corral app gamma ")]
    assert len(users) == 1
    name = users[0].pw_name
    assert (platform.home / "users" / name).is_dir()
    destroyed = corral("apps:destroy", "gamma", "--confirm", "gamma", env=platform.env)
    assert destroyed.returncode == 0, destroyed.stderr
    wait_until(lambda: name not in {u.pw_name for u in pwd.getpwall()}, timeout=10)
    assert not (platform.home / "users" / name).exists()
    assert not (platform.home / "apps" / "gamma").exists()


def test_a_strangers_user_of_the_apps_name_refuses_the_app_and_creates_nothing(
    platform: Server,
):
    prefix = platform.env["CORRAL_USER_PREFIX"]
    subprocess.run(["/usr/sbin/useradd", "--no-create-home", f"{prefix}delta"], check=True)
    created = corral("apps:create", "delta", "--no-remote", env=platform.env)
    assert created.returncode == 1
    assert "Traceback" not in created.stderr
    assert f"The system user {prefix}delta already exists and is not corral's" in created.stderr
    listed = corral("apps", env=platform.env)
    assert "delta" not in listed.stdout
    assert pwd.getpwnam(f"{prefix}delta").pw_gecos == ""


def test_a_long_app_name_gets_a_valid_user_of_its_own(platform: Server):
    name = "a-very-long-application-name-x"
    created = corral("apps:create", name, "--no-remote", env=platform.env)
    assert created.returncode == 0, created.stderr
    users = [u for u in pwd.getpwall() if u.pw_gecos.startswith(f"corral app {name} ")]
    assert len(users) == 1 and len(users[0].pw_name) <= 32
    assert users[0].pw_name.startswith(platform.env["CORRAL_USER_PREFIX"] + "a-very")
    destroyed = corral("apps:destroy", name, "--confirm", name, env=platform.env)
    assert destroyed.returncode == 0, destroyed.stderr


@pytest.mark.skipif(HOST is None, reason=f"kernel limits need cgroups: {WHY}")
@pytest.mark.parametrize("how", ["corral run", "release phase"])
def test_one_offs_and_the_release_phase_run_as_the_app_in_a_cgroup_of_their_own(
    platform: Server, how: str
):
    if how == "corral run":
        result = corral("run", "-a", "alpha", "--", WHO_AND_WHERE, env=platform.env)
    else:
        result = corral("releases:output", "-a", "alpha", env=platform.env)
    assert result.returncode == 0, result.stdout + result.stderr
    user, where = result.stdout.strip().splitlines()[-2:]
    assert user == f"{platform.env['CORRAL_USER_PREFIX']}alpha"
    group = where.split(":", 2)[2]
    name = "run." if how == "corral run" else "release.1."
    assert group.startswith(f"/{base_for_home(platform.home)}/alpha/{name}"), where
