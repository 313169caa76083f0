"""The supervisor against a real store, real slugs and real gunicorn dynos."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import psutil
import pytest

from corral.builder import build
from corral.config import Settings
from corral.runtime.logs import recent
from corral.runtime.supervisor import SupervisorOptions
from corral.store import Store
from corral.store.names import PLATFORM_APP
from support.supervisor import OPTIONS, ManagerThread, backends, wait_live, wait_managed
from support.wait import assert_stays

pytestmark = pytest.mark.slow

APP = textwrap.dedent(
    """
    import os
    from flask import Flask
    app = Flask(__name__)

    @app.get("/")
    def index():
        return f"{os.environ.get('GREETING', 'hello')} from {os.environ['DYNO']}"
    """
)


@pytest.fixture
def settings(tmp_path: Path, corral_home: Path) -> Settings:
    """A home of its own whose installer cache is the session's warm one."""
    home = tmp_path / "home"
    (home / "cache").parent.mkdir(parents=True, exist_ok=True)
    (home / "cache").symlink_to(corral_home / "cache", target_is_directory=True)
    (corral_home / "cache").mkdir(exist_ok=True)
    return Settings.load(home)


def deploy(settings: Settings, store: Store, tmp_path: Path, app: str, procfile: str, **files):
    source = tmp_path / f"src-{time.monotonic_ns()}"
    source.mkdir()
    (source / "requirements.txt").write_text("flask\ngunicorn\n")
    (source / "app.py").write_text(APP)
    (source / "Procfile").write_text(procfile)
    for name, text in files.items():
        (source / name).write_text(text)
    slug = build(source, settings, app=app, emit=lambda _: None)
    return store.create_release(
        app, slug.id, slug.path, slug.process_types, f"Deploy {slug.id}", status="pending"
    )


def get(port: int) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}/", timeout=5)


@pytest.fixture
def running(settings: Settings) -> Iterator[ManagerThread]:
    with ManagerThread(settings, OPTIONS) as thread:
        yield thread


def test_first_deploy_boots_web_and_switches_routes(settings, running, tmp_path) -> None:
    store = running.store
    store.create_app("hello")
    release = deploy(settings, store, tmp_path, "hello", "web: gunicorn app:app\n")
    wait_managed(lambda: store.release("hello", release.version).status != "pending")
    assert store.release("hello", release.version).status == "succeeded"
    wait_managed(lambda: backends(settings, "hello"), message="routes")
    [(dyno, port)] = backends(settings, "hello")
    assert dyno == "web.1" and get(port).text == "hello from web.1"
    [row] = store.dynos("hello")
    assert row.state == "up" and row.release_version == release.version
    lines = [str(line) for line in recent(settings.logs_dir("hello"))]
    assert any(
        "corral[web.1]: Starting process with command `gunicorn app:app`" in x for x in lines
    )
    assert any("app[web.1]:" in x and "Listening at" in x for x in lines)


def test_scale_up_and_down(settings, running, tmp_path) -> None:
    store = running.store
    store.create_app("scaled")
    deploy(settings, store, tmp_path, "scaled", "web: gunicorn app:app\nworker: sleep 600\n")
    wait_live(settings, store, "scaled")
    store.scale("scaled", {"web": 3, "worker": 1})
    wait_managed(lambda: len(backends(settings, "scaled")) == 3, message="three web dynos")
    wait_managed(lambda: len(store.dynos("scaled")) == 4, message="four dynos")
    assert {d.name for d in store.dynos("scaled")} == {"web.1", "web.2", "web.3", "worker.1"}
    bodies = {get(port).text for _, port in backends(settings, "scaled")}
    assert bodies == {"hello from web.1", "hello from web.2", "hello from web.3"}
    store.scale("scaled", {"web": 1, "worker": 0})
    wait_managed(
        lambda: [d.name for d in store.dynos("scaled")] == ["web.1"], message="scaled down"
    )


def test_killed_dyno_comes_back(settings, running, tmp_path) -> None:
    store = running.store
    store.create_app("phoenix")
    deploy(settings, store, tmp_path, "phoenix", "web: gunicorn app:app\n")
    wait_managed(lambda: backends(settings, "phoenix"))
    [before] = store.dynos("phoenix")
    os.killpg(before.pid, signal.SIGKILL)
    wait_managed(
        lambda: [d for d in store.dynos("phoenix") if d.pid != before.pid and d.state == "up"],
        message="a new web.1",
    )
    [after] = store.dynos("phoenix")
    wait_managed(lambda: backends(settings, "phoenix") == [("web.1", after.port)], message="route")
    [(_, port)] = backends(settings, "phoenix")
    assert get(port).status_code == 200


def test_crash_loop_shows_crashed_with_growing_delays(settings, running, tmp_path) -> None:
    store = running.store
    store.create_app("loop")
    deploy(settings, store, tmp_path, "loop", "web: gunicorn app:app\nworker: exit 1\n")
    wait_live(settings, store, "loop")
    store.scale("loop", {"worker": 1})
    delays: list[float] = []

    def crashed_again() -> bool:
        worker = [d for d in store.dynos("loop") if d.name == "worker.1"]
        if worker and worker[0].state == "crashed" and worker[0].next_restart_at:
            delay = round(worker[0].next_restart_at - worker[0].since, 1)
            # the first restart is immediate (a delay of 0, seen on a slow machine): not counted
            if delay > 0 and (not delays or delay != delays[-1]):
                delays.append(delay)
        return len(delays) >= 4

    wait_managed(crashed_again, timeout=30, message="four crashes")
    # then the waits grow
    assert delays == sorted(set(delays)) and delays[-1] >= 4 * delays[0] > 0
    lines = [line.message for line in recent(settings.logs_dir("loop"), dyno="worker.1")]
    assert "Process exited with status 1" in lines
    assert "State changed from up to crashed" in lines


def test_failed_health_check_keeps_the_old_release_serving(settings, tmp_path) -> None:
    options = SupervisorOptions(boot_timeout=3, grace=5, tick=0.1)
    with ManagerThread(settings, options) as running:
        store = running.store
        store.create_app("steady")
        deploy(settings, store, tmp_path, "steady", "web: gunicorn app:app\n")
        wait_managed(lambda: backends(settings, "steady"))
        [old] = store.dynos("steady")
        broken = deploy(settings, store, tmp_path, "steady", "web: echo booting; sleep 600\n")
        wait_managed(lambda: store.release("steady", broken.version).status == "failed")
        [still] = store.dynos("steady")
        assert (still.pid, still.state) == (old.pid, "up")
        [(_, port)] = backends(settings, "steady")
        assert get(port).text == "hello from web.1"
        messages = [line.message for line in recent(settings.logs_dir("steady"))]
        assert any("did not pass the health check" in m for m in messages)
        assert any("booting" in m for m in messages)


def test_config_change_rolls_dynos_onto_the_new_release(settings, running, tmp_path) -> None:
    store = running.store
    store.create_app("greet")
    deploy(settings, store, tmp_path, "greet", "web: gunicorn app:app\n")
    wait_managed(lambda: backends(settings, "greet"))
    # routed before its verdict is in the store: a config change waits for the verdict
    wait_managed(lambda: not store.pending_releases("greet"), message="the deploy's verdict")
    [old] = store.dynos("greet")
    release = store.set_config("greet", {"GREETING": "howdy"})
    wait_managed(
        lambda: [d for d in store.dynos("greet") if d.release_version == release.version],
        message="dyno on the new release",
    )
    [new] = store.dynos("greet")
    wait_managed(lambda: backends(settings, "greet") == [("web.1", new.port)], message="route")
    [(_, port)] = backends(settings, "greet")
    assert get(port).text == "howdy from web.1"
    wait_managed(lambda: not psutil.pid_exists(old.pid) or _zombie(old.pid), message="old drained")


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_new_manager_adopts_running_dynos(settings, tmp_path) -> None:
    first = ManagerThread(settings, OPTIONS).__enter__()
    store = first.store
    store.create_app("adopt")
    deploy(settings, store, tmp_path, "adopt", "web: gunicorn app:app\n")
    wait_managed(lambda: backends(settings, "adopt"))
    [before] = store.dynos("adopt")
    first.abandon()
    with ManagerThread(settings, OPTIONS) as second:
        adopted = f"Adopted running process (pid {before.pid})"
        wait_managed(
            lambda: adopted in [line.message for line in recent(settings.logs_dir("adopt"))],
            message="the new manager to adopt web.1",
        )

        def unchanged() -> bool:
            [after] = second.store.dynos("adopt")
            return (after.pid, after.state) == (before.pid, "up")

        # adopting is decided before the first tick; later ticks (0.1 s each) must agree
        assert_stays(unchanged, for_seconds=1, message="the adopted web.1 left alone")
        [(_, port)] = backends(settings, "adopt")
        assert get(port).status_code == 200


def test_restart_rolls_web_without_downtime_and_stop_brings_dynos_back(
    settings, running, tmp_path
) -> None:
    store = running.store
    store.create_app("again")
    deploy(settings, store, tmp_path, "again", "web: gunicorn app:app\nworker: sleep 600\n")
    wait_live(settings, store, "again")
    store.scale("again", {"worker": 1})
    wait_managed(lambda: len(store.dynos("again")) == 2, message="web and worker")
    old = {d.name: d.pid for d in store.dynos("again")}
    store.request_dynos("again", "restart")
    failures = 0
    deadline = time.monotonic() + 30
    while {d.name: d.pid for d in store.dynos("again")}.get("web.1") == old["web.1"]:
        assert time.monotonic() < deadline, "web.1 never restarted"
        [(_, port)] = backends(settings, "again") or [("", 0)]
        try:
            failures += get(port).status_code != 200 if port else 0
        except httpx.TransportError:
            failures += 1
    assert failures == 0
    wait_managed(
        lambda: (
            {d.name: d.pid for d in store.dynos("again")}.get("worker.1")
            not in (None, old["worker.1"])
        ),
        message="worker restarted",
    )
    worker = next(d for d in store.dynos("again") if d.name == "worker.1")
    store.request_dynos("again", "stop", "worker.1")
    wait_managed(
        lambda: any(d.name == "worker.1" and d.pid != worker.pid for d in store.dynos("again")),
        message="worker.1 back after ps:stop",
    )
    with pytest.raises(Exception, match="neither a dyno nor a process type"):
        store.request_dynos("again", "restart", "clock")


def test_dyno_far_over_its_apps_memory_quota_is_restarted(settings, tmp_path) -> None:
    options = SupervisorOptions(boot_timeout=20, grace=2, tick=0.1)  # platform default: 512 MB
    with ManagerThread(settings, options) as running:
        store = running.store
        store.create_app("hungry")
        store.set_memory_quota("hungry", 70)  # this app's own quota
        # holds 200 MB until the manager restarts it for its memory
        hog = "python -c \"import time; x = b'x' * (200 << 20); time.sleep(600)\""
        deploy(settings, store, tmp_path, "hungry", f"web: gunicorn app:app\nhog: {hog}\n")
        wait_live(settings, store, "hungry")
        store.scale("hungry", {"hog": 1})
        wait_managed(lambda: any(d.name == "hog.1" for d in store.dynos("hungry")), message="hog.1")
        first = next(d for d in store.dynos("hungry") if d.name == "hog.1")

        def restarted() -> bool:
            hog1 = [d for d in store.dynos("hungry") if d.name == "hog.1"]
            return bool(hog1) and hog1[0].pid != first.pid

        wait_managed(restarted, timeout=60, message="hog.1 restarted for its memory")
        messages = [line.message for line in recent(settings.logs_dir("hungry"), dyno="hog.1")]
        assert any(m.startswith("Error R15 (Memory quota vastly exceeded)") for m in messages)


def test_dynos_left_booting_by_a_dead_platform_are_stopped_and_the_rollout_reruns(
    settings, tmp_path
) -> None:
    options = SupervisorOptions(boot_timeout=60, grace=2, tick=0.1)
    first = ManagerThread(settings, options).__enter__()
    store = first.store
    store.create_app("midway")
    deploy(settings, store, tmp_path, "midway", "web: gunicorn app:app\n")
    wait_managed(lambda: backends(settings, "midway"))
    booting = settings.run_dir / "booting" / "midway.json"
    # routed means in the store: no longer listed as booting, or a restart would stop it
    assert not booting.exists()
    deploy(settings, store, tmp_path, "midway", "web: echo booting; sleep 600\n")
    wait_managed(booting.exists, message="the rollout to record its booting dyno")
    [orphan] = json.loads(booting.read_text())
    first.abandon()  # the platform dies mid-rollout
    with ManagerThread(settings, options):
        wait_managed(lambda: _zombie(orphan["pid"]), message="the orphaned dyno to be stopped")

        def booting_again() -> bool:
            entries = json.loads(booting.read_text()) if booting.exists() else []
            return bool(entries) and entries[0]["pid"] != orphan["pid"]

        wait_managed(booting_again, message="the pending release to be rolled out again")
        [rerun] = json.loads(booting.read_text())
        [(_, port)] = backends(settings, "midway")
        assert get(port).text == "hello from web.1"  # the old release serves throughout
    # a clean shutdown in the middle of a rollout stops the dyno it was booting too
    wait_managed(lambda: _zombie(rerun["pid"]), timeout=10, message="the booting dyno stopped")


# -- dynos without HTTP must stay up a settle time -----------------------------------------

#: A worker that exits a second after it starts: it passes no settle time.
QUITTER = "worker: python -c 'import time; print(\"quitting soon\", flush=True); time.sleep(1)'\n"
SLEEPER = "worker: python -c 'import time; time.sleep(600)'\n"


def _pids(store: Store, app: str) -> dict[str, int | None]:
    return {d.name: d.pid for d in store.dynos(app)}


def test_a_worker_that_exits_after_a_second_fails_its_release(settings, running, tmp_path) -> None:
    store = running.store
    store.create_app("quits")
    deploy(settings, store, tmp_path, "quits", "web: gunicorn app:app\n" + SLEEPER)
    wait_live(settings, store, "quits")
    store.scale("quits", {"worker": 1})
    wait_managed(lambda: len(store.dynos("quits")) == 2, message="web.1 and worker.1")
    before = _pids(store, "quits")
    broken = deploy(settings, store, tmp_path, "quits", "web: gunicorn app:app\n" + QUITTER)
    wait_managed(lambda: store.release("quits", broken.version).status == "failed")
    failed = store.release("quits", broken.version)
    assert failed.failure_reason.startswith("worker.1 exited 1."), failed.failure_reason
    assert failed.failure_reason.endswith("a dyno without HTTP must keep running for 3s")
    assert failed.failure_excerpt == ("worker.1: quitting soon",)
    # the old release's web and worker ran throughout and still run
    assert _pids(store, "quits") == before
    assert {d.release_version for d in store.dynos("quits")} == {broken.version - 1}
    [(_, port)] = backends(settings, "quits")
    assert get(port).text == "hello from web.1"


def test_new_workers_boot_beside_the_old_until_they_have_settled(settings, tmp_path) -> None:
    with ManagerThread(settings, OPTIONS) as running:
        store = running.store
        store.create_app("settles")
        first = deploy(settings, store, tmp_path, "settles", SLEEPER)
        wait_managed(lambda: store.release("settles", first.version).status == "succeeded")
        store.scale("settles", {"worker": 1})
        wait_managed(lambda: store.dynos("settles"), message="worker.1")
        [old] = store.dynos("settles")
        app_json = json.dumps({"healthcheck": {"settle": 2}})
        new = deploy(settings, store, tmp_path, "settles", SLEEPER, **{"app.json": app_json})
        booting = settings.run_dir / "booting" / "settles.json"
        wait_managed(booting.exists, message="the new worker booting")
        started = time.monotonic()
        # the old worker keeps its row (and runs) while the new one settles
        assert_stays(lambda: _pids(store, "settles") == {"worker.1": old.pid}, for_seconds=1.5)
        wait_managed(lambda: store.release("settles", new.version).status == "succeeded")
        assert time.monotonic() - started >= 1.5
        [now] = store.dynos("settles")
        assert (now.release_version, now.state) == (new.version, "up") and now.pid != old.pid
        wait_managed(lambda: not psutil.pid_exists(old.pid) or _zombie(old.pid), message="drained")


def test_a_rollback_to_a_release_that_crashes_keeps_the_current_one(
    settings, running, tmp_path
) -> None:
    store = running.store
    store.create_app("back")
    # v1's worker quits at once, unnoticed: the first deploy runs no worker
    deploy(settings, store, tmp_path, "back", "web: gunicorn app:app\n" + QUITTER)
    wait_live(settings, store, "back")
    fixed = deploy(settings, store, tmp_path, "back", "web: gunicorn app:app\n" + SLEEPER)
    wait_managed(lambda: store.release("back", fixed.version).status == "succeeded")
    store.scale("back", {"worker": 1})
    wait_managed(lambda: len(store.dynos("back")) == 2, message="web.1 and worker.1")
    wait_managed(lambda: {d.state for d in store.dynos("back")} == {"up"}, message="all up")
    before = _pids(store, "back")
    rollback = store.rollback("back", 1)

    def failed() -> bool:
        messages = [line.message for line in recent(settings.logs_dir("back"), source="corral")]
        return f"Release {rollback.name} failed: worker.1 exited" in "\n".join(messages)

    wait_managed(failed, message="the rollback's rollout to fail")
    assert _pids(store, "back") == before
    assert {d.release_version for d in store.dynos("back")} == {fixed.version}
    [(_, port)] = backends(settings, "back")
    assert get(port).text == "hello from web.1"
    # not retried on every tick: the failed rollback stays failed until something new
    assert_stays(lambda: not (settings.run_dir / "booting" / "back.json").exists(), 1)


def test_a_restart_of_a_worker_that_now_crashes_keeps_the_running_one(
    settings, running, tmp_path
) -> None:
    store = running.store
    store.create_app("restarts")
    marker = tmp_path / "broken"
    worker = (
        "worker: python -c 'import os, sys, time; "
        f'os.path.exists("{marker}") and sys.exit("worker cannot start"); '
        'print("past the check", flush=True); time.sleep(600)\'\n'
    )
    deploy(settings, store, tmp_path, "restarts", "web: gunicorn app:app\n" + worker)
    wait_live(settings, store, "restarts")
    store.scale("restarts", {"worker": 1})
    wait_managed(lambda: len(store.dynos("restarts")) == 2, message="web.1 and worker.1")
    # the running worker must be past its look at the marker, or it would exit too
    wait_managed(
        lambda: any(
            line.message == "past the check"
            for line in recent(settings.logs_dir("restarts"), dyno="worker.1")
        ),
        message="the worker running",
    )
    before = _pids(store, "restarts")
    marker.touch()
    store.request_dynos("restarts", "restart", "worker")

    def failed() -> bool:
        messages = [line.message for line in recent(settings.logs_dir("restarts"))]
        return any("failed: worker.1 exited" in m for m in messages)

    wait_managed(failed, message="the restart's rollout to fail")
    assert _pids(store, "restarts") == before
    messages = [line.message for line in recent(settings.logs_dir("restarts"), dyno="worker.1")]
    assert "  worker cannot start" in messages  # its own line, quoted in the verdict
    marker.unlink()
    store.request_dynos("restarts", "restart")
    wait_managed(
        lambda: all(pid != before[name] for name, pid in _pids(store, "restarts").items()),
        message="both dynos replaced",
    )
    assert set(_pids(store, "restarts")) == {"web.1", "worker.1"}


def test_a_commit_wakes_the_supervisor_between_its_ticks(settings, tmp_path) -> None:
    """A release, a scale: each is acted on when recorded, not at the supervisor's next tick
    (a minute away here), because every write of another process tells it."""
    with ManagerThread(settings, replace(OPTIONS, tick=600)) as thread:
        store = thread.store
        store.create_app("eager")
        wait_managed(lambda: thread.manager.view.apps.get("eager"), message="the first tick")
        deploy(settings, store, tmp_path, "eager", "web: gunicorn app:app\nworker: sleep 600\n")
        wait_live(settings, store, "eager")
        store.scale("eager", {"worker": 1})
        wait_managed(
            lambda: [d.name for d in store.dynos("eager")] == ["web.1", "worker.1"],
            message="worker.1 started",
        )


def test_a_pass_that_fails_is_logged_and_the_supervisor_goes_on(settings, tmp_path) -> None:
    """A fault in one reconcile pass (here the route table cannot be written: a directory
    stands in its place) never ends the loop that supervises every dyno."""
    settings.routes_path.parent.mkdir(parents=True, exist_ok=True)
    settings.routes_path.mkdir()
    with ManagerThread(settings, OPTIONS) as thread:
        store = thread.store
        store.create_app("hardy")

        def said() -> bool:
            lines = recent(settings.logs_dir(PLATFORM_APP), 20)
            return any("A supervisor pass failed" in line.message for line in lines)

        wait_managed(said, message="the failed pass logged")
        time.sleep(OPTIONS.tick * 3)  # passes that keep failing: the loop is still there
        assert thread.error is None
        settings.routes_path.rmdir()
        deploy(settings, store, tmp_path, "hardy", "web: gunicorn app:app\n")
        wait_live(settings, store, "hardy")
        (_, port), *_ = backends(settings, "hardy")
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
