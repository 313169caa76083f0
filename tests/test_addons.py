"""PostgreSQL add-ons on a real `corral server` as root, apps isolated: one cluster for the
module, a Flask app with psycopg pushed with git writing and reading rows through its
``DATABASE_URL``, the cluster killed and the platform restarted under it, two apps kept
out of each other's databases, ``pg:psql`` with and without a terminal, backups, destroy."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import pytest

from corral.addons.cluster import Cluster
from corral.config import Settings
from support.addons import needs_postgresql
from support.cli import corral
from support.dashboard import csrf_of
from support.isolation import needs_root, unique_prefix, users_removed
from support.server import Server, git, isolated_server, start_server
from support.terminal import Terminal
from support.wait import wait_until

pytestmark = [needs_root, needs_postgresql]

APP = """import os
import psycopg
from flask import Flask, request

app = Flask(__name__)


def connect():
    return psycopg.connect(os.environ["DATABASE_URL"], autocommit=True, connect_timeout=5)


@app.get("/")
def index():
    with connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS notes (body text)")
        rows = conn.execute("SELECT body FROM notes ORDER BY body").fetchall()
    return ",".join(row[0] for row in rows) or "empty"


@app.post("/notes")
def add():
    with connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS notes (body text)")
        conn.execute("INSERT INTO notes VALUES (%s)", (request.get_data(as_text=True),))
    return "ok"
"""


@pytest.fixture(scope="module")
def platform() -> Iterator[Server]:
    """One platform (and so one PostgreSQL cluster) for the whole module, as root with
    apps isolated: the cluster runs as the postgres user, each app and its one-offs
    (``pg:psql``) as its own."""
    with (
        users_removed(unique_prefix()) as prefix,
        isolated_server(prefix) as running,
    ):
        yield running


def _corral(server: Server, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return corral(*args, env=server.env, timeout=timeout)


def _ok(server: Server, *args: str) -> str:
    done = _corral(server, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def _push(server: Server, app: str, root: Path) -> None:
    repo = root / f"repo-{app}"
    repo.mkdir()
    (repo / "requirements.txt").write_text("flask\ngunicorn\npsycopg[binary]\n")
    (repo / "app.py").write_text(APP)
    (repo / "Procfile").write_text("web: gunicorn app:app\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v1")
    pushed = git(repo, "push", server.git_url(app), "main", check=False)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr


def _attached_as(server: Server, app: str, var: str) -> str:
    """The add-on ``app`` has attached as ``var``."""
    with server.api as api:
        addons = api.get(f"/apps/{app}/addons").json()
    [name] = [a["name"] for a in addons for at in a["attachments"] if at == {"app": app, "as": var}]
    return name


def _get(server: Server, app: str) -> httpx.Response:
    return server.app_get(app)


def _post(server: Server, app: str, body: str) -> httpx.Response:
    return httpx.post(
        f"http://127.0.0.1:{server.port}/notes", content=body, headers={"Host": f"{app}.localhost"}
    )


def _serving(server: Server, app: str, text: str) -> None:
    def shows() -> bool:
        try:
            answer = _get(server, app)
        except httpx.TransportError:
            return False
        return answer.status_code == 200 and text in answer.text

    wait_until(shows, timeout=60, interval=0.2, message=f"{app} serving {text!r}")


@pytest.fixture(scope="module")
def alpha(platform: Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    """App alpha: a database add-on, then deployed, a row written through the app."""
    _ok(platform, "apps:create", "alpha")
    created = _ok(platform, "addons:create", "postgresql", "-a", "alpha")
    assert "attached as DATABASE_URL" in created
    _push(platform, "alpha", tmp_path_factory.mktemp("alpha"))
    assert _post(platform, "alpha", "first").text == "ok"
    return "alpha"


def test_an_app_writes_and_reads_rows_through_its_database_url(
    platform: Server, alpha: str
) -> None:
    assert _get(platform, alpha).text == "first"
    listed = _ok(platform, "addons", "-a", alpha)
    assert "postgresql" in listed and "alpha as DATABASE_URL" in listed
    # the password is in the app's config only, never in a listing or the platform's logs
    url = _ok(platform, "config:get", "DATABASE_URL", "-a", alpha).strip()
    password = url.split(":")[2].split("@")[0]
    assert password not in listed
    for log in (platform.home / "logs").rglob("*.log"):
        assert password not in log.read_text(errors="replace"), log
    state = platform.home / "addons" / "postgresql"
    assert (state / "data").stat().st_mode & 0o777 == 0o700
    assert (state / "cluster.json").stat().st_mode & 0o777 == 0o600


def test_kill_9_of_the_cluster_restarts_it_and_loses_no_committed_row(
    platform: Server, alpha: str
) -> None:
    assert _post(platform, alpha, "before-kill").text == "ok"
    postmaster = platform.home / "addons" / "postgresql" / "data" / "postmaster.pid"
    pid = int(postmaster.read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not psutil.pid_exists(pid), timeout=10, interval=0.05)
    _serving(platform, alpha, "before-kill")  # restarted by the supervisor, app reconnected
    assert _get(platform, alpha).text == "before-kill,first"


def test_the_cluster_is_adopted_across_a_restart_of_the_platform(
    platform: Server, alpha: str
) -> None:
    postmaster = platform.home / "addons" / "postgresql" / "data" / "postmaster.pid"
    pid = int(postmaster.read_text().split()[0])
    os.kill(platform.process.pid, signal.SIGKILL)
    platform.process.wait()
    platform.process = start_server(platform.home, platform.port, platform.env, isolation=True)
    ps = _ok(platform, "ps", "--platform")
    assert "postgresql" in ps
    assert int(postmaster.read_text().split()[0]) == pid  # the same server, adopted
    assert _post(platform, alpha, "after-restart").text == "ok"
    assert "after-restart" in _get(platform, alpha).text


def test_one_apps_role_cannot_connect_to_another_apps_database(
    platform: Server, alpha: str, tmp_path: Path
) -> None:
    _ok(platform, "apps:create", "bravo")
    _ok(platform, "addons:create", "postgresql", "-a", "bravo")
    bravo_db = _ok(platform, "config:get", "DATABASE_URL", "-a", "bravo").strip().rsplit("/", 1)[1]
    probe = (
        "import os, psycopg\n"
        "url = os.environ['DATABASE_URL'].rsplit('/', 1)[0] + '/' + os.environ['TARGET']\n"
        "try:\n"
        "    psycopg.connect(url, connect_timeout=5).close()\n"
        "    print('CONNECTED')\n"
        "except psycopg.OperationalError as error:\n"
        "    print('REFUSED', error)\n"
    )
    for target in (bravo_db, "postgres", "template1"):
        done = _ok(platform, "run", "-a", alpha, "--", "env", f"TARGET={target}", "python",
                   "-c", probe)  # fmt: skip
        assert "REFUSED" in done and "CONNECT privilege" in done, done


def test_a_second_database_is_attached_under_another_var(platform: Server, alpha: str) -> None:
    before = _ok(platform, "config:get", "DATABASE_URL", "-a", alpha)
    created = _ok(platform, "addons:create", "postgresql", "-a", alpha, "--no-wait")
    second = created.split("attached as ")[1].split()[0].rstrip(",")
    assert second != "DATABASE_URL" and second.endswith("_URL")
    assert _ok(platform, "config:get", "DATABASE_URL", "-a", alpha) == before
    taken = _corral(platform, "addons:create", "postgresql", "-a", alpha, "--as", "DATABASE_URL")
    assert taken.returncode == 1 and "--as" in taken.stderr and "Traceback" not in taken.stderr


def test_an_addon_attached_to_another_app_is_shared_then_detached(
    platform: Server, alpha: str
) -> None:
    _ok(platform, "apps:create", "reports")
    addon = _attached_as(platform, alpha, "DATABASE_URL")
    _ok(platform, "addons:attach", addon, "-a", "reports", "--as", "ALPHA_DATABASE_URL")
    shared = _ok(platform, "config:get", "ALPHA_DATABASE_URL", "-a", "reports").strip()
    assert shared == _ok(platform, "config:get", "DATABASE_URL", "-a", alpha).strip()
    refused = _corral(platform, "addons:detach", addon, "-a", alpha)
    assert refused.returncode == 1 and "addons:destroy" in refused.stderr
    _ok(platform, "addons:detach", addon, "-a", "reports")
    assert "ALPHA_DATABASE_URL" not in _ok(platform, "config", "-a", "reports")


def test_rotating_credentials_rolls_the_app_and_revokes_the_old_login(
    platform: Server, alpha: str
) -> None:
    old = _ok(platform, "config:get", "DATABASE_URL", "-a", alpha).strip()
    rotated = _ok(platform, "pg:credentials:rotate", "-a", alpha)
    assert "old credentials revoked" in rotated
    new = _ok(platform, "config:get", "DATABASE_URL", "-a", alpha).strip()
    assert new != old
    _serving(platform, alpha, "first")  # the rolled dynos connect with the new login
    assert _post(platform, alpha, "after-rotate").text == "ok"
    probe = (
        "import os, psycopg\n"
        "try:\n"
        "    psycopg.connect(os.environ['OLD'], connect_timeout=5).close()\n"
        "    print('CONNECTED')\n"
        "except psycopg.OperationalError as error:\n"
        "    print('REFUSED', error)\n"
    )
    done = _ok(platform, "run", "-a", alpha, "--", "env", f"OLD={old}", "python", "-c", probe)
    assert "REFUSED" in done, done
    # what the new login makes is the database owner's, as before
    owner = _ok(platform, "pg:psql", "-a", alpha, "-c", "select tableowner from pg_tables "
                "where tablename = 'notes'")  # fmt: skip
    assert old.split("//")[1].split(":")[0] in owner


def test_pg_psql_runs_sql_and_an_interactive_session(platform: Server, alpha: str) -> None:
    shown = _ok(platform, "pg:psql", "-a", alpha, "-c", "select count(*) as n from notes")
    assert " n " in shown and "(1 row)" in shown
    term = Terminal("pg:psql", "-a", alpha, env=platform.env, size=(30, 100))
    try:
        term.expect("=>")  # psql's prompt: the app's role is no superuser
        term.send(b"select 'from' || ' the pty';\r")
        term.expect("from the pty")
        term.send(b"\\q\r")
        assert term.wait() == 0
    finally:
        term.close()
    info = _ok(platform, "pg:info", "-a", alpha)
    assert "Tables:" in info and "postgresql 1" in info


def test_backup_then_drop_then_restore_brings_the_rows_back(
    platform: Server, alpha: str, tmp_path: Path
) -> None:
    rows = _get(platform, alpha).text
    assert "b001" in _ok(platform, "pg:backups:capture", "-a", alpha)
    _ok(platform, "pg:psql", "-a", alpha, "-c", "drop table notes")
    assert _get(platform, alpha).text == "empty"
    refused = _corral(platform, "pg:backups:restore", "-a", alpha)  # no terminal, no --confirm
    assert refused.returncode == 1 and "replaces every table" in refused.stdout
    _ok(platform, "pg:backups:restore", "-a", alpha, "--confirm", alpha)
    assert _get(platform, alpha).text == rows
    target = tmp_path / "copy.dump"
    _ok(platform, "pg:backups:download", "b001", str(target), "-a", alpha)
    assert target.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format


def test_scheduled_backups_are_taken_by_a_service_and_kept_to_their_number(
    platform: Server, alpha: str
) -> None:
    before = _ok(platform, "pg:backups", "-a", alpha).count("\nb0")
    passed = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%H:%M")  # due at once
    _ok(platform, "pg:backups:schedule", "-a", alpha, "--at", passed, "--keep", "1")
    wait_until(
        lambda: _ok(platform, "pg:backups", "-a", alpha).count("\nb0") == before + 1,
        timeout=60, interval=0.5, message="a scheduled backup",
    )  # fmt: skip
    listed = _ok(platform, "pg:backups", "-a", alpha)
    assert f"every day at {passed} UTC, the last 1 kept" in listed
    assert "backups" in _ok(platform, "ps", "--platform")
    _ok(platform, "pg:backups:unschedule", "-a", alpha)
    wait_until(lambda: "backups" not in _ok(platform, "ps", "--platform"), timeout=30, interval=0.5)
    bad = _corral(platform, "pg:backups:schedule", "-a", alpha, "--at", "25:00")
    assert bad.returncode == 1 and "HH:MM" in bad.stderr and "Traceback" not in bad.stderr


def test_a_backup_that_fails_says_why_and_keeps_the_earlier_ones(
    platform: Server, alpha: str
) -> None:
    with platform.api as api:
        config = api.get(f"/apps/{alpha}/config").json()
    [second] = [var for var in config if var.startswith("POSTGRESQL_")]  # the second database
    name = _attached_as(platform, alpha, second)
    database = name.replace("-", "_")
    assert "b001" in _ok(platform, "pg:backups:capture", second, "-a", alpha)
    cluster = Cluster(Settings.load(platform.home))
    cluster.sql(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false;\n')
    try:
        failed = _corral(platform, "pg:backups:capture", second, "-a", alpha)
    finally:
        cluster.sql(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true;\n')
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert "not currently accepting connections" in failed.stderr
    assert "earlier backups are kept" in failed.stderr
    listed = _ok(platform, "pg:backups", second, "-a", alpha)
    assert "b001" in listed and "b002" not in listed
    assert not list((platform.home / "addons" / name / "backups").glob("*.partial"))


def test_the_dashboard_lists_the_apps_addons_with_state_size_and_last_backup(
    platform: Server, alpha: str
) -> None:
    _ok(platform, "pg:backups:capture", "-a", alpha)
    base = f"http://localhost:{platform.port}"
    with httpx.Client(base_url=base, timeout=30) as browser:
        form = browser.get("/login")
        data = {"csrf_token": csrf_of(form.text), "token": platform.token}
        assert browser.post("/login", data=data).status_code == 302
        page = browser.get(f"/apps/{alpha}").text
    addon = _attached_as(platform, alpha, "DATABASE_URL")
    section = page[page.index('id="addons"') :]
    assert addon in section and "DATABASE_URL" in section
    assert ">up<" in section and " MB" in section and "ago" in section
    assert "postgres://" not in page  # never a URL, with its password


def test_a_database_on_a_given_server_with_an_admin_that_is_no_superuser(
    platform: Server, alpha: str
) -> None:
    # the platform's own cluster stands in for a managed server: an admin role with
    # CREATEROLE and CREATEDB reached over TCP with a password, as such services give
    cluster = Cluster(Settings.load(platform.home))
    cluster.sql("CREATE ROLE ext_admin LOGIN CREATEROLE CREATEDB PASSWORD 'adm1n-pw';\n"
                "CREATE ROLE ext_weak LOGIN PASSWORD 'weak-pw';\n"
                "GRANT CONNECT ON DATABASE postgres TO ext_admin, ext_weak;\n")  # fmt: skip
    admin = f"postgres://ext_admin:adm1n-pw@127.0.0.1:{cluster.port}/postgres"
    before = _ok(platform, "addons", "-a", alpha)
    for url, words in (
        (admin.replace("adm1n-pw", "wrong"), "password authentication failed"),
        (admin.replace("ext_admin:adm1n-pw", "ext_weak:weak-pw"), "CREATEROLE and CREATEDB"),
        ("mysql://x@y/z", "postgres:// URL"),
    ):
        refused = _corral(platform, "addons:create", "postgresql", "-a", alpha, "--server", url)
        assert refused.returncode == 1 and words in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    assert _ok(platform, "addons", "-a", alpha) == before  # nothing made
    _ok(platform, "addons:create", "postgresql", "-a", alpha, "--server", admin,
        "--as", "EXT_DATABASE_URL")  # fmt: skip
    name = _attached_as(platform, alpha, "EXT_DATABASE_URL")
    info = _ok(platform, "addons:info", name)
    assert f"127.0.0.1:{cluster.port}" in info and "adm1n-pw" not in info
    with platform.api as api:
        assert "adm1n-pw" not in api.get(f"/addons/{name}").text
    ext = ("EXT_DATABASE_URL", "-a", alpha)
    _ok(platform, "pg:psql", *ext, "-c", "create table t (x int)")
    assert "b001" in _ok(platform, "pg:backups:capture", *ext)
    _ok(platform, "pg:psql", *ext, "-c", "drop table t")
    _ok(platform, "pg:backups:restore", "b001", *ext, "--confirm", alpha)
    assert "(0 rows)" in _ok(platform, "pg:psql", *ext, "-c", "select * from t")
    _ok(platform, "addons:destroy", name, "--confirm", alpha)
    role = name.replace("-", "_")
    assert cluster.sql(f"SELECT count(*) FROM pg_roles WHERE rolname = '{role}';\n").strip() == "0"


def test_destroying_an_addon_leaves_only_its_last_backup(platform: Server) -> None:
    _ok(platform, "apps:create", "charlie")
    created = _ok(platform, "addons:create", "postgresql", "-a", "charlie")
    name = created.split("done, ")[1].split()[0]
    refused = _corral(platform, "addons:destroy", name, "--confirm", "alpha")
    assert refused.returncode == 1 and "--confirm charlie" in refused.stderr
    destroyed = _ok(platform, "addons:destroy", name, "--confirm", "charlie")
    assert "kept 7 days" in destroyed
    assert "DATABASE_URL" not in _ok(platform, "config", "-a", "charlie")
    role = name.replace("-", "_")
    sql = f"select count(*) from pg_roles where rolname = '{role}'"
    left = _ok(platform, "pg:psql", "-a", "alpha", "-c", sql)
    assert " 0\n" in left
    assert (platform.home / "addons" / name / "backups" / "b001.dump").exists()
    # apps:destroy takes its databases with it
    _ok(platform, "addons:create", "postgresql", "-a", "charlie")
    _ok(platform, "apps:destroy", "charlie", "--confirm", "charlie")
    with platform.api as api:
        assert api.get("/apps/bravo/addons").status_code == 200
    sql = "select count(*) from pg_database where datname like 'postgresql_%'"
    remaining = _ok(platform, "pg:psql", "-a", "alpha", "-c", sql)
    assert " 3\n" in remaining  # alpha's two and bravo's
