"""Kernel limits per dyno: a cgroup each, on this host's cgroup v1 for real, and v2's files
checked on a stand-in tree (a host has one or the other, never both controllers)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import httpx
import psutil
import pytest

from corral.config import Settings
from corral.runtime import cgroups
from corral.runtime.cgroups import Hierarchy, Limits, base_for_home, detect
from corral.runtime.logs import recent
from corral.runtime.supervisor import SupervisorOptions
from corral.store import Store
from support.supervisor import ManagerThread, backends, wait_live, wait_managed

HOST, WHY = detect()
needs_cgroups = pytest.mark.skipif(
    HOST is None or os.geteuid() != 0, reason=f"kernel limits need root and cgroups: {WHY}"
)


@pytest.fixture
def fake_v2(tmp_path: Path, monkeypatch) -> Path:
    """A stand-in for a cgroup v2 mount: the files the kernel would create, made on write."""
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    monkeypatch.setattr(cgroups, "_write", lambda path, value: path.write_text(value))
    return root


def test_v2_is_detected_by_its_controllers_and_named_when_one_is_missing(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu io memory\n")
    assert detect(tmp_path) == (None, "cgroup v2 lacks the pids controller(s)")
    (tmp_path / "cgroup.controllers").write_text("cpu io memory pids\n")
    found, note = detect(tmp_path)
    assert found is not None and found.version == 2 and note == "cgroup v2"


def test_no_cgroups_at_all_is_said_in_one_sentence(tmp_path: Path) -> None:
    assert detect(tmp_path) == (None, f"no cgroup v2 or v1 hierarchy is mounted at {tmp_path}")
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "cgroup.procs").write_text("")
    assert detect(tmp_path)[1] == f"cgroup v1 lacks the pids, cpu controller(s) at {tmp_path}"


def test_v2_groups_get_controllers_handed_down_and_hard_limits(fake_v2: Path) -> None:
    hierarchy = Hierarchy(2, fake_v2)
    hierarchy.prepare("corral/abc/alpha", cpu_weight=50)
    for parent in (
        fake_v2,
        fake_v2 / "corral",
        fake_v2 / "corral/abc",
        fake_v2 / "corral/abc/alpha",
    ):
        assert (parent / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert (fake_v2 / "corral/abc/alpha/cpu.weight").read_text() == "50"
    group = hierarchy.group("corral/abc/alpha/web.1.8")
    created = hierarchy.create("corral/abc/alpha/web.1.8", Limits(memory=100 << 20, pids=64))
    assert created.dirs == group.dirs
    leaf = fake_v2 / "corral/abc/alpha/web.1.8"
    assert (leaf / "memory.max").read_text() == str(100 << 20)
    assert (leaf / "pids.max").read_text() == "64"
    (leaf / "memory.events").write_text("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n")
    assert created.oom_kills() == 1
    (leaf / "memory.current").write_text("1234\n")
    assert created.memory() == 1234


def test_home_bases_differ_per_home(tmp_path: Path) -> None:
    assert base_for_home(tmp_path / "a") != base_for_home(tmp_path / "b")
    assert base_for_home(tmp_path / "a").startswith("corral/")


HOG = textwrap.dedent(
    """
    import signal, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as the attacker's would
    held = []
    print("hogging", flush=True)
    while True:
        held.append(b"x" * (20 << 20))
        time.sleep(0.1)
    """
)


@needs_cgroups
def test_the_shim_runs_the_dyno_in_its_group_and_the_kernel_stops_it_at_the_limit(
    tmp_path: Path,
) -> None:
    from corral.runtime import shim

    (tmp_path / "hog.py").write_text(HOG)
    parent = f"{base_for_home(tmp_path)}/hungry"
    assert HOST is not None
    HOST.prepare(parent)
    status = tmp_path / "status.{pid}"
    hog = str(tmp_path / "hog.py")
    group = HOST.create(f"{parent}/hog.1.test", Limits(memory=64 << 20))
    dirs = [arg for d in group.dirs for arg in ("--cgroup-dir", str(d))]
    argv = ["--log", str(tmp_path / "logs"), "--dyno", "hog.1", "--status", str(status),
            *dirs, "--oom-file", str(group.oom_file), "--memory", str(64 << 20),
            "--", sys.executable, hog]  # fmt: skip
    started = time.monotonic()
    assert shim.main(argv) == 137
    assert not group.exists()  # removed once the dyno was gone
    assert time.monotonic() - started < 30
    recorded = json.loads(Path(str(status).replace("{pid}", str(os.getpid()))).read_text())
    assert recorded["oom_killed"] is True and recorded["status"] == 137
    log = (tmp_path / "logs" / "hog.1.log").read_text()
    assert (
        "Error R15 (Memory quota vastly exceeded): the kernel stopped the dyno at its limit of 64M"
        in log
    )
    HOST.remove_empty(base_for_home(tmp_path))
    assert not HOST.group(base_for_home(tmp_path)).exists()


def test_the_kernel_tells_the_shim_of_an_oom_kill_so_an_idle_shim_never_polls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dyno whose master survives the OOM kill of one of its processes (a gunicorn worker)
    is stopped as a whole on the kernel's word: the shim's polls are put an hour apart."""
    from corral.runtime import shim

    monkeypatch.setattr(shim, "_OOM_POLL", 3600.0)
    monkeypatch.setattr(shim, "_OOM_SAFETY", 3600.0)
    (tmp_path / "hog.py").write_text(HOG)
    parent = f"{base_for_home(tmp_path)}/eventful"
    assert HOST is not None
    HOST.prepare(parent)
    group = HOST.create(f"{parent}/web.1.test", Limits(memory=64 << 20))
    dirs = [arg for d in group.dirs for arg in ("--cgroup-dir", str(d))]
    # and says nothing once its process is killed (no "Killed" from sh) that could wake it
    master = f"exec 2>/dev/null; {sys.executable} {tmp_path / 'hog.py'}; sleep 600"
    argv = ["--log", str(tmp_path / "logs"), "--dyno", "web.1",
            "--status", str(tmp_path / "status.{pid}"), *dirs, "--oom-file",
            str(group.oom_file), "--memory", str(64 << 20), "--", "sh", "-c", master]  # fmt: skip
    assert shim.main(argv) != 0  # not an hour: the kernel's event woke it
    log = (tmp_path / "logs" / "web.1.log").read_text()
    assert "Error R15 (Memory quota vastly exceeded)" in log
    assert not group.exists()
    HOST.remove_empty(base_for_home(tmp_path))


@pytest.fixture
def settings(warm_settings: Settings) -> Settings:
    return warm_settings


def _deploy(settings: Settings, store: Store, tmp_path: Path, app: str, procfile: str, **files):
    from corral.builder import build

    source = tmp_path / f"src-{app}"
    source.mkdir()
    (source / "requirements.txt").write_text("flask\ngunicorn\n")
    (source / "app.py").write_text(
        "from flask import Flask\napp = Flask(__name__)\napp.get('/')(lambda: 'calm')\n"
    )
    (source / "Procfile").write_text(procfile)
    for name, text in files.items():
        (source / name).write_text(text)
    slug = build(source, settings, app=app, emit=lambda _: None)
    if app not in {known.name for known in store.list_apps()}:
        store.create_app(app)
    store.create_release(app, slug.id, slug.path, slug.process_types, "Deploy", status="pending")


def _deploy_with(settings: Settings, store: Store, tmp_path: Path, app: str, kind: str, code: str):
    """Deploy ``app`` with a web dyno and a ``kind`` dyno running ``code``; scale it to 1."""
    procfile = f"web: gunicorn app:app\n{kind}: python {kind}.py\n"
    _deploy(settings, store, tmp_path, app, procfile, **{f"{kind}.py": code})
    wait_live(settings, store, app)
    store.scale(app, {kind: 1})
    return wait_managed(
        lambda: next((d for d in store.dynos(app) if d.name == f"{kind}.1"), None),
        message=f"{kind}.1 to start",
    )


def _rss_of(marker: str) -> int:
    total = 0
    for proc in psutil.process_iter(["cmdline", "memory_info"]):
        if marker in " ".join(proc.info["cmdline"] or ()) and proc.info["memory_info"]:
            total += proc.info["memory_info"].rss
    return total


@needs_cgroups
@pytest.mark.slow
def test_a_hog_never_holds_much_more_than_its_quota_and_is_restarted_with_r15(
    settings: Settings, tmp_path: Path
) -> None:
    options = SupervisorOptions(boot_timeout=20, grace=2, tick=0.1)
    with ManagerThread(settings, options, cgroups=HOST) as running:
        store = running.store
        store.create_app("hungry")
        store.set_memory_quota("hungry", 100)
        first = _deploy_with(settings, store, tmp_path, "hungry", "hog", HOG)
        peak = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # sampled, as the issue asks
            peak = max(peak, _rss_of("hog.py"))
            now = [d for d in store.dynos("hungry") if d.name == "hog.1"]
            if now and now[0].pid != first.pid and now[0].restarts >= 1:
                break
            time.sleep(0.05)
        else:
            pytest.fail("hog.1 was not restarted after its OOM kill")
        assert peak < 1.5 * (100 << 20), f"the app held {peak >> 20} MB against 100 MB"
        messages = [line.message for line in recent(settings.logs_dir("hungry"), dyno="hog.1")]
        assert any(
            "Error R15 (Memory quota vastly exceeded): the kernel stopped" in m for m in messages
        )


BOMB = textwrap.dedent(
    """
    import os, time
    print("forking", flush=True)
    while True:
        try:
            os.fork()
        except OSError:
            time.sleep(0.05)
    """
)


@needs_cgroups
@pytest.mark.slow
def test_a_fork_bomb_stays_in_its_dyno_and_another_app_keeps_serving(
    settings: Settings, tmp_path: Path
) -> None:
    options = SupervisorOptions(boot_timeout=30, grace=2, tick=0.1)
    with ManagerThread(settings, options, cgroups=HOST) as running:
        store = running.store
        _deploy(settings, store, tmp_path, "calm", "web: gunicorn app:app\n")
        wait_live(settings, store, "calm")
        _deploy_with(settings, store, tmp_path, "bomb", "bomb", BOMB)
        app_group = f"{base_for_home(settings.home)}/bomb"
        found = wait_managed(lambda: list(HOST.group(app_group).dirs[0].glob("bomb.1.*")))
        group = HOST.group(f"{app_group}/{found[0].name}")
        wait_managed(lambda: len(group.pids()) >= 100, message="the bomb to fork")
        port = backends(settings, "calm")[0][1]
        served = [httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text for _ in range(20)]
        assert served == ["calm"] * 20
        assert len(group.pids()) <= Limits.pids
        store.delete_app("bomb")
        wait_managed(lambda: not group.exists(), timeout=60, message="the bomb's group to go")

        def bomb_alive() -> list[int]:  # killed ones may linger a moment as zombies
            return [
                p.pid
                for p in psutil.process_iter(["cmdline", "status"])
                if "bomb.py" in " ".join(p.info["cmdline"] or ())
                and p.info["status"] != psutil.STATUS_ZOMBIE
            ]

        wait_managed(lambda: not bomb_alive(), timeout=10, message="every bomb process to die")


def test_the_server_says_whether_dynos_get_kernel_limits(tmp_path: Path, monkeypatch) -> None:
    from corral.runtime.confinement import kernel_limits

    settings = Settings.load(tmp_path / "home")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert kernel_limits(settings) == (None, "off: corral server is not running as root")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(
        "corral.runtime.confinement.detect",
        lambda: (None, "cgroup v2 lacks the pids controller(s)"),
    )
    assert kernel_limits(settings) == (None, "off: cgroup v2 lacks the pids controller(s)")


@needs_cgroups
def test_as_root_the_server_turns_kernel_limits_on(tmp_path: Path) -> None:
    from corral.runtime.confinement import kernel_limits

    settings = Settings.load(tmp_path / "home")
    hierarchy, note = kernel_limits(settings)
    assert hierarchy is not None
    assert note == f"on ({WHY}: memory, pids and CPU per dyno)"
    assert hierarchy.group(base_for_home(settings.home)).exists()
    hierarchy.remove_empty(base_for_home(settings.home))
