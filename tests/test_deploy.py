"""The deploy pipeline: build, release phase, rollout verdict, one-off runs, serialization."""

from __future__ import annotations

import io
import tarfile
import textwrap
import threading
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from corral.config import Settings
from corral.deploy.pipeline import DeployPipeline
from corral.runtime.logs import recent
from support.supervisor import OPTIONS, ManagerThread, backends, wait_managed
from support.wait import assert_stays

pytestmark = pytest.mark.slow

APP = textwrap.dedent(
    """
    import os
    from flask import Flask
    app = Flask(__name__)

    @app.get("/")
    def index():
        return os.environ.get("GREETING", "v-one")
    """
)


@pytest.fixture
def settings(tmp_path: Path, corral_home: Path) -> Settings:
    home = tmp_path / "home"
    home.mkdir()
    (corral_home / "cache").mkdir(exist_ok=True)
    (home / "cache").symlink_to(corral_home / "cache", target_is_directory=True)
    return Settings.load(home)


def source(tmp_path: Path, procfile: str = "web: gunicorn app:app\n", app: str = APP) -> Path:
    directory = tmp_path / f"src-{len(list(tmp_path.iterdir()))}"
    directory.mkdir()
    (directory / "requirements.txt").write_text("flask\ngunicorn\n")
    (directory / "app.py").write_text(app)
    (directory / "Procfile").write_text(procfile)
    return directory


def test_deploy_streams_build_and_goes_live(settings, tmp_path) -> None:
    with ManagerThread(settings, OPTIONS) as running:
        running.store.create_app("live")
        pipeline = DeployPipeline(
            replace(settings, domain="corral.test", router_port=9090), running.store
        )
        lines = list(pipeline.deploy_source("live", source(tmp_path), "Deploy abc1234"))
        assert lines[-1] == "corral-status: succeeded v1", lines
        assert any(line.startswith("-----> Detected Python app") for line in lines)
        assert "-----> Launching v1" in lines
        assert "-----> Released v1: http://live.corral.test:9090/ is live" in lines
        [(_, port)] = backends(settings, "live")
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "v-one"
        [build] = running.store.builds("live")
        written = Path(build.log_path).read_text()
        assert build.status == "succeeded" and written.count("----->")
        built = [line.message for line in recent(settings.logs_dir("live"), source="build")]
        assert "-----> Launching v1" in built
        # the verdict is for the pushing CLI, never for a build log people read
        assert "corral-status" not in written and not any("corral-status" in b for b in built)
        assert running.store.release("live", 1).description == "Deploy abc1234"


def test_failing_release_phase_changes_nothing(settings, tmp_path) -> None:
    with ManagerThread(settings, OPTIONS) as running:
        running.store.create_app("phase")
        pipeline = DeployPipeline(settings, running.store)
        assert list(pipeline.deploy_source("phase", source(tmp_path), "v1"))[-1].endswith("v1")
        [before] = running.store.dynos("phase")
        bad = source(tmp_path, "web: gunicorn app:app\nrelease: echo migrating; exit 4\n")
        lines = list(pipeline.deploy_source("phase", bad, "v2"))
        assert lines[-1] == "corral-status: failed"
        assert "migrating" in lines
        assert any("Release command failed (exit status 4)" in line for line in lines)
        assert [r.version for r in running.store.releases("phase")] == [1]
        assert [d.pid for d in running.store.dynos("phase")] == [before.pid]


def test_app_that_never_listens_fails_and_old_keeps_serving(settings, tmp_path) -> None:
    options = type(OPTIONS)(boot_timeout=3, grace=5, tick=0.1)
    with ManagerThread(settings, options) as running:
        running.store.create_app("stuck")
        pipeline = DeployPipeline(settings, running.store)
        list(pipeline.deploy_source("stuck", source(tmp_path), "v1"))
        lines = list(pipeline.deploy_source("stuck", source(tmp_path, "web: sleep 600\n"), "v2"))
        assert lines[-1] == "corral-status: failed"
        assert any("did not pass the health check" in line for line in lines)
        assert running.store.current_release("stuck").version == 1
        [(_, port)] = backends(settings, "stuck")
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200


def test_crash_while_booting_reports_the_reason_and_the_dynos_own_output(
    settings, tmp_path
) -> None:
    with ManagerThread(settings, OPTIONS) as running:
        running.store.create_app("crash")
        pipeline = DeployPipeline(settings, running.store)
        list(pipeline.deploy_source("crash", source(tmp_path), "v1"))
        crashing = source(tmp_path, "web: echo missing-$((6 * 7)); exit 3\n")  # not its own text
        lines = list(pipeline.deploy_source("crash", crashing, "v2"))
        assert lines[-1] == "corral-status: failed"
        verdict = lines.index(
            " !     v2 failed to start: web.1 exited while booting; "
            "the previous release keeps serving."
        )
        assert "       web.1: missing-42" in lines[verdict:]
        assert sum("missing-42" in line for line in lines) == 1, lines
        failed = running.store.release("crash", 2)
        assert failed.failure_reason == "web.1 exited while booting"
        assert "web.1: missing-42" in failed.failure_excerpt


def test_run_streams_output_and_exit_code(settings, tmp_path) -> None:
    with ManagerThread(settings, OPTIONS) as running:
        running.store.create_app("oneoff")
        running.store.set_config("oneoff", {"GREETING": "hi"})
        pipeline = DeployPipeline(settings, running.store)
        list(pipeline.deploy_source("oneoff", source(tmp_path), "v1"))
        script = (
            "import os, flask; print(flask.__name__, os.environ['GREETING'], "
            "os.environ['DYNO']); raise SystemExit(3)"
        )
        lines = list(pipeline.run("oneoff", ["python", "-c", script]))
        assert lines[0].startswith("flask hi run.") and lines[-1] == "corral-exit: 3"
        assert list(pipeline.run("oneoff", ["no-such-program"]))[-1] == "corral-exit: 127"


def test_uploaded_tarball_with_escaping_member_is_refused(settings, tmp_path) -> None:
    with ManagerThread(settings, OPTIONS) as running:
        running.store.create_app("upload")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            info = tarfile.TarInfo("../../escape.py")
            archive.addfile(info, io.BytesIO(b""))
        buffer.seek(0)
        lines = list(DeployPipeline(settings, running.store).build_tarball("upload", buffer))
        assert lines[-1] == "corral-status: failed"
        assert "outside the source directory" in lines[0]
        assert running.store.releases("upload") == []


def test_deploys_of_one_app_wait_for_each_other(settings, tmp_path) -> None:
    with ManagerThread(settings, OPTIONS) as running:
        running.store.create_app("queue")
        pipeline = DeployPipeline(settings, running.store)
        slow = source(tmp_path, "web: gunicorn app:app\nrelease: sleep 2\n")
        outputs: list[list[str]] = []
        first = threading.Thread(
            target=lambda: outputs.append(list(pipeline.deploy_source("queue", slow, "one")))
        )
        first.start()
        wait_managed(lambda: running.store.builds("queue"), message="first build started")
        second = list(pipeline.deploy_source("queue", source(tmp_path), "two"))
        first.join()
        assert any("Another deploy of queue is in progress" in line for line in second)
        assert outputs[0][-1] == "corral-status: succeeded v1"
        assert second[-1] == "corral-status: succeeded v2"


def test_builds_wait_for_a_free_slot_when_every_core_is_building(settings, tmp_path) -> None:
    import fcntl
    import os

    with ManagerThread(settings, OPTIONS) as running:
        running.store.create_app("slot")
        settings.run_dir.mkdir(parents=True, exist_ok=True)
        held = []
        for i in range(os.cpu_count() or 1):  # other builds occupy every slot
            handle = open(settings.run_dir / f"build-slot-{i}.lock", "a")  # noqa: SIM115
            fcntl.flock(handle, fcntl.LOCK_EX)
            held.append(handle)
        lines: list[str] = []
        pipeline = DeployPipeline(settings, running.store)
        worker = threading.Thread(
            target=lambda: lines.extend(pipeline.deploy_source("slot", source(tmp_path), "v1"))
        )
        worker.start()
        wait_managed(lambda: running.store.builds("slot"), message="the build to be recorded")
        # it must keep waiting: no slot is free (it retries every 0.2 s)
        assert_stays(
            lambda: not any(line.startswith("-----> Detected") for line in lines), for_seconds=0.5
        )
        for handle in held:
            handle.close()
        worker.join(timeout=120)
        assert "-----> Waiting for a free build slot" in lines
        assert lines[-1] == "corral-status: succeeded v1"
