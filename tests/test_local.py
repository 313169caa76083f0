"""``corral local``, ``local:run`` and ``env`` for real: built environments, gunicorn, signals.

The pure planning (ports, formation, selection) is tested with plain values first; the
rest runs the ``corral`` CLI as a subprocess on a tiny Flask app, on free loopback ports.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from corral.errors import UserError
from corral.local.plan import (
    PlannedProcess,
    base_port,
    check_ports_free,
    parse_formation,
    plan_processes,
)
from support.cli import corral as run_cli
from support.wait import wait_until

# ------------------------------------------------------------------- planning, pure


def test_ports_follow_procfile_order_and_instance_numbers() -> None:
    planned = plan_processes(["web", "worker", "clock"], (), {"web": 2}, 5000)
    assert planned == [
        PlannedProcess("web.1", "web", 5000),
        PlannedProcess("web.2", "web", 5001),
        PlannedProcess("worker.1", "worker", 5100),
        PlannedProcess("clock.1", "clock", 5200),
    ]


def test_selected_types_keep_their_procfile_ports() -> None:
    planned = plan_processes(["web", "worker"], ("worker",), {}, 7000)
    assert planned == [PlannedProcess("worker.1", "worker", 7100)]


def test_release_runs_only_when_asked_for() -> None:
    types = ["release", "web"]
    assert [p.name for p in plan_processes(types)] == ["web.1"]
    assert [p.name for p in plan_processes(types, ("release",))] == ["release.1"]
    assert [p.name for p in plan_processes(types, (), {"release": 1})] == ["release.1", "web.1"]


def test_formation_all_sets_every_count_and_zero_skips_a_type() -> None:
    planned = plan_processes(["web", "worker"], (), {"all": 2, "worker": 0})
    assert [p.name for p in planned] == ["web.1", "web.2"]


def test_unknown_process_type_names_the_ones_that_exist() -> None:
    with pytest.raises(UserError, match=r"no process type 'wrk'; name one of this app's: web, wo"):
        plan_processes(["web", "worker"], ("wrk",))
    with pytest.raises(UserError, match=r"no process type 'wrk'"):
        plan_processes(["web", "worker"], (), {"wrk": 1})


def test_formation_outside_the_selection_is_refused() -> None:
    with pytest.raises(UserError, match=r"-m gives worker=2 but you asked to run only web"):
        plan_processes(["web", "worker"], ("web",), {"worker": 2})


def test_nothing_to_run_is_refused() -> None:
    with pytest.raises(UserError, match=r"^Nothing to run"):
        plan_processes(["web"], (), {"web": 0})


def test_ports_past_65535_are_refused() -> None:
    with pytest.raises(UserError, match=r"worker.1 would get port 65600, above 65535"):
        plan_processes(["web", "worker"], (), {}, 65500)


def test_formation_parses_pairs_and_refuses_anything_else() -> None:
    assert parse_formation(["web=2,worker=1", "clock=0"]) == {"web": 2, "worker": 1, "clock": 0}
    for bad in ("web", "web=", "web=-1", "=2", "web=two"):
        with pytest.raises(UserError, match=r"^-m expects NAME=COUNT pairs"):
            parse_formation([bad])
    with pytest.raises(UserError, match=r"at most 100"):
        parse_formation(["web=101"])


def test_base_port_comes_from_option_then_port_then_default() -> None:
    assert base_port(6000, {"PORT": "7000"}) == 6000
    assert base_port(None, {"PORT": "7000"}) == 7000
    assert base_port(None, {}) == 5000
    with pytest.raises(UserError, match=r"PORT is 'http', not a port number"):
        base_port(None, {"PORT": "http"})


def test_port_in_use_is_named_with_its_process() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(UserError, match=rf"Port {port} \(for web.1\) is already in use.*-p"):
            check_ports_free([PlannedProcess("web.1", "web", port)])


# ----------------------------------------------------------------- real processes

FLASK_APP = """\
import os
import re

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return os.environ.get("GREETING", "no greeting")
"""

SHOW_ENV = """\
import os, time
print("env", os.environ["DYNO"], os.environ["PORT"], os.environ["PYTHONUNBUFFERED"], flush=True)
time.sleep(120)  # stays up until corral local stops it
"""

# Waits for the web process next door (its port is this one's minus 100) and for the
# test's "go" file, then crashes: so the test can see everything running first.
CRASH_LATER = """\
import os, socket, sys, time

deadline = time.monotonic() + 120
port = int(os.environ["PORT"]) - 100
while True:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("web never came up")
        time.sleep(0.05)  # this child's own polling, bounded by its deadline
while not os.path.exists("go"):
    if time.monotonic() > deadline:
        sys.exit("never told to go")
    time.sleep(0.05)  # this child's own polling, bounded by its deadline
print("boom", flush=True)
sys.exit(3)
"""


@pytest.fixture(scope="session")
def corral_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One CORRAL_HOME for the session, so the Flask environment is built once."""
    return tmp_path_factory.mktemp("corral-home")


@pytest.fixture
def environ(corral_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "GREETING"))}
    env.pop("PORT", None)
    env["CORRAL_HOME"] = str(corral_home)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def make_app(directory: Path, procfile: str | None, files: dict[str, str] | None = None) -> Path:
    """A Flask app with flask + gunicorn requirements, the given Procfile and extra files."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "requirements.txt").write_text("flask\ngunicorn\n")
    (directory / "app.py").write_text(FLASK_APP)
    if procfile is not None:
        (directory / "Procfile").write_text(procfile)
    for name, text in (files or {}).items():
        (directory / name).write_text(text)
    return directory


def corral(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``corral ARGS`` to completion (builds included, hence the long timeout)."""
    return run_cli(*args, env=env, cwd=cwd, timeout=240)


def free_port(block: int = 1) -> int:
    """A loopback port that is free, with the next one (a second dyno of a type) and the
    ``+100`` ports of ``block`` process types too."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        try:
            wanted = [port + 100 * i + j for i in range(block) for j in range(2)]
            check_ports_free([PlannedProcess("p", "p", each) for each in wanted])
        except UserError:
            continue
        return port
    raise AssertionError("no free port block found")


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class Local:
    """``corral local`` running in the background, its output collected line by line."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "corral", "local", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.seen: set[int] = set()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for raw in self.popen.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def descendants(self) -> set[int]:
        """Every process below ``corral local`` now (remembered for the cleanup too)."""
        pids = {p.pid for p in psutil.Process(self.popen.pid).children(recursive=True)}
        self.seen |= pids
        return pids

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"corral local did not exit:\n{self.output}") from None

    def get(self, url: str, timeout: float = 180) -> httpx.Response:
        """GET ``url`` once it answers, failing early if corral local exits first."""

        def running() -> None:
            if self.popen.poll() is not None:
                raise AssertionError(f"corral local exited early:\n{self.output}")

        def answer() -> httpx.Response | None:
            try:
                return httpx.get(url, timeout=5)
            except httpx.TransportError:
                return None

        return wait_until(
            answer,
            timeout,
            interval=0.1,
            message=lambda: f"{url} to answer:\n{self.output}",
            check=running,
        )

    def kill(self) -> None:
        for pid in [self.popen.pid, *self.seen]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.popen.wait(10)


@pytest.fixture
def start_local(environ: dict[str, str]) -> Iterator[Callable[..., Local]]:
    started: list[Local] = []

    def start(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Local:
        running = Local(args, cwd, env or environ)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.popen.poll() is None or any(not gone(pid) for pid in running.seen):
            running.kill()


def assert_one_clear_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in last, last


@pytest.mark.slow
def test_local_serves_the_app_with_dotenv_and_sigterm_leaves_nothing_running(
    tmp_path: Path, start_local: Callable[..., Local]
) -> None:
    app = make_app(
        tmp_path / "hello", "web: gunicorn app:app\n", {".env": "GREETING=hi from .env\n"}
    )
    port = free_port()
    local = start_local(["-p", str(port)], app)
    response = local.get(f"http://127.0.0.1:{port}/")
    assert response.status_code == 200
    assert response.text == "hi from .env"
    children = local.descendants()
    assert len(children) >= 2  # the shell or gunicorn's master, and a worker

    local.popen.send_signal(signal.SIGTERM)
    assert local.wait() == 143
    assert "SIGTERM received" in local.output
    assert "sending SIGTERM to all processes" in local.output
    wait_until(lambda: all(gone(pid) for pid in children), 5, message="every child to exit")


@pytest.mark.slow
def test_local_gives_each_process_its_port_and_dyno_name_and_stops_on_sigint(
    tmp_path: Path, start_local: Callable[..., Local]
) -> None:
    procfile = "web: python show_env.py\nworker: python show_env.py\n"
    app = make_app(tmp_path / "envs", procfile, {"show_env.py": SHOW_ENV})
    port = free_port(block=2)
    local = start_local(["-p", str(port), "web=2,worker=1"], app)
    wait_until(
        lambda: local.output.count("| env ") == 3,
        180,
        message=lambda: f"three processes:\n{local.output}",
    )
    children = local.descendants()
    local.popen.send_signal(signal.SIGINT)
    assert local.wait() == 130
    shown = {line.split(" | ", 1)[1] for line in local.lines if " | env " in line}
    assert shown == {
        f"env web.1 {port} 1",
        f"env web.2 {port + 1} 1",
        f"env worker.1 {port + 100} 1",
    }
    wait_until(lambda: all(gone(pid) for pid in children), 5, message="every child to exit")


@pytest.mark.slow
def test_one_crashing_process_stops_the_others_and_its_exit_code_comes_back(
    tmp_path: Path, start_local: Callable[..., Local]
) -> None:
    procfile = "web: gunicorn app:app\ncrash: python crash.py\n"
    app = make_app(tmp_path / "crashy", procfile, {"crash.py": CRASH_LATER})
    port = free_port(block=2)
    local = start_local(["-p", str(port)], app)
    assert local.get(f"http://127.0.0.1:{port}/").status_code == 200
    children = local.descendants()
    (app / "go").touch()

    assert local.wait() == 3
    assert any(line.endswith("crash.1 | boom") for line in local.lines), local.output
    assert "crash.1 exited with code 3" in local.output
    wait_until(lambda: all(gone(pid) for pid in children), 5, message="every child to exit")


@pytest.mark.slow
def test_process_crashing_at_once_shows_its_output_and_code(
    tmp_path: Path, start_local: Callable[..., Local]
) -> None:
    procfile = "web: gunicorn app:app\ncrash: sh -c 'echo boom; exit 3'\n"
    app = make_app(tmp_path / "crash-now", procfile)
    local = start_local(["-p", str(free_port(block=2))], app)
    assert local.wait() == 3
    assert any(line.endswith("crash.1 | boom") for line in local.lines), local.output
    system = [line.split(" | ", 1)[1] for line in local.lines if " system " in line]
    assert "crash.1 exited with code 3" in system
    web_pid = next(int(s.rsplit(" ", 1)[1]) for s in system if s.startswith("web.1 started"))
    assert gone(web_pid)


@pytest.mark.slow
def test_local_run_sees_dotenv_and_the_apps_environment_and_passes_its_exit_code(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    app = make_app(tmp_path / "oneoff", "web: gunicorn app:app\n", {".env": "GREETING=from file\n"})
    code = "import os, sys, flask; print(os.environ['GREETING']); print(sys.prefix); sys.exit(7)"
    result = corral(["local:run", "python", "-c", code], app, environ)
    assert result.returncode == 7, result.stderr
    greeting, prefix = result.stdout.splitlines()
    assert greeting == "from file"
    assert prefix == corral(["env", "--path"], app, environ).stdout.strip()
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_local_run_keeps_the_shells_value_unless_told_to_override(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    app = make_app(
        tmp_path / "override", "web: gunicorn app:app\n", {".env": "GREETING=from file\n"}
    )
    env = {**environ, "GREETING": "from shell"}
    show = ["python", "-c", "import os; print(os.environ['GREETING'])"]
    assert corral(["local:run", *show], app, env).stdout == "from shell\n"
    assert corral(["local:run", "--override-env", *show], app, env).stdout == "from file\n"


@pytest.mark.slow
def test_local_run_unknown_command_is_one_clear_error(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    app = make_app(tmp_path / "nocmd", "web: gunicorn app:app\n")
    result = corral(["local:run", "no-such-command-xyz"], app, environ)
    assert result.returncode == 127
    assert_one_clear_error(result, "no-such-command-xyz: command not found")


@pytest.mark.slow
def test_env_path_can_be_activated_in_a_shell(tmp_path: Path, environ: dict[str, str]) -> None:
    app = make_app(tmp_path / "activate", "web: gunicorn app:app\n")
    result = corral(["env"], app, environ)
    assert result.returncode == 0, result.stderr
    assert '. "$(corral env --path)/bin/activate"' in result.stdout
    path = Path(corral(["env", "--path"], app, environ).stdout.strip())
    assert (path / "bin" / "activate").is_file()
    script = (
        '. "$(corral env --path)/bin/activate" && python -c "import flask, sys; print(sys.prefix)"'
    )
    activated = subprocess.run(
        ["/bin/sh", "-c", script], cwd=app, env=environ, capture_output=True, text=True, timeout=120
    )
    assert activated.stdout.strip() == str(path), activated.stderr


# ------------------------------------------------------------------------ bad input


def test_no_procfile_and_nothing_to_infer_is_one_clear_error(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    app = tmp_path / "bare"
    app.mkdir()
    (app / "requirements.txt").write_text("flask\n")
    (app / "tool.py").write_text("print('not a web app')\n")
    assert_one_clear_error(corral(["local"], app, environ), "No Procfile")


def test_unknown_process_argument_says_which_exist(tmp_path: Path, environ: dict[str, str]) -> None:
    app = make_app(tmp_path / "named", "web: gunicorn app:app\nworker: python w.py\n")
    result = corral(["local", "wrker"], app, environ)
    assert_one_clear_error(result, "no process type 'wrker'", "web, worker")


def test_formation_for_a_type_not_asked_for_is_one_clear_error(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    app = make_app(tmp_path / "formation", "web: gunicorn app:app\nworker: python w.py\n")
    result = corral(["local", "web", "-m", "worker=2"], app, environ)
    assert_one_clear_error(result, "-m gives worker=2 but you asked to run only web")


def test_malformed_dotenv_line_is_named(tmp_path: Path, environ: dict[str, str]) -> None:
    app = make_app(tmp_path / "badenv", "web: gunicorn app:app\n", {".env": "A=1\nB = 2\noops\n"})
    assert_one_clear_error(corral(["local"], app, environ), "line 3 of .env is not KEY=VALUE")
    assert_one_clear_error(
        corral(["local:run", "true"], app, environ), "line 3 of .env is not KEY=VALUE"
    )


def test_missing_env_file_is_one_clear_error(tmp_path: Path, environ: dict[str, str]) -> None:
    app = make_app(tmp_path / "noenv", "web: gunicorn app:app\n")
    result = corral(["local", "-e", "prod.env"], app, environ)
    assert_one_clear_error(result, "prod.env does not exist")


@pytest.mark.slow
def test_port_in_use_is_one_clear_error(tmp_path: Path, environ: dict[str, str]) -> None:
    app = make_app(tmp_path / "busy", "web: gunicorn app:app\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = corral(["local", "-p", str(port)], app, environ)
    assert_one_clear_error(result, f"Port {port} (for web.1) is already in use", "-p")


def test_local_run_works_for_an_app_with_nothing_to_serve(
    tmp_path: Path, environ: dict[str, str]
) -> None:
    app = tmp_path / "script-app"
    app.mkdir()
    (app / "requirements.txt").write_text("six\n")
    (app / "job.py").write_text("import six\nprint('ran', six.__name__)\n")
    result = corral(["local:run", "python", "job.py"], app, environ)
    assert result.returncode == 0, result.stderr
    assert "ran six" in result.stdout


def test_new_app_runs_with_corral_local_and_passes_its_own_tests(
    tmp_path: Path, environ: dict[str, str], start_local: Callable[..., Local]
) -> None:
    created = corral(["new", "demo", "--no-git"], tmp_path, environ)
    assert created.returncode == 0, created.stderr
    app = tmp_path / "demo"
    (app / ".env").write_text("GREETING=Hello from .env\n")
    port = free_port()
    local = start_local(["-p", str(port)], app)
    page = local.get(f"http://127.0.0.1:{port}/")
    assert page.status_code == 200 and "Hello from .env" in page.text
    api = local.get(f"http://127.0.0.1:{port}/api/hello")
    assert api.json()["message"] == "Hello from .env" and api.json()["dyno"] == "web.1"
    css = re.search(r'href="(/[^"]*bootstrap[^"]*\.css)"', page.text)
    assert css, "the page links no locally served Bootstrap CSS"
    response = local.get(f"http://127.0.0.1:{port}{css.group(1)}")
    assert response.status_code == 200 and "text/css" in response.headers["content-type"]
    os.killpg(local.popen.pid, signal.SIGTERM)
    local.wait()
    tests = corral(["local:run", "pytest", "-q"], app, environ)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "passed" in tests.stdout
