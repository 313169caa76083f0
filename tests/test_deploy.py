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
def settings(warm_settings: Settings) -> Settings:
    return warm_settings


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


# -- a broken release never goes live -----------------------------------------------------

#: The good release prints this at import, so its lines are told apart from the new one's.
MARKED = APP.replace("import os\n", "import os\nprint('old-release-importing', flush=True)\n")


def test_app_whose_import_raises_fails_with_its_own_traceback(settings, tmp_path) -> None:
    with ManagerThread(settings, OPTIONS) as running:
        running.store.create_app("keyerr")
        pipeline = DeployPipeline(settings, running.store)
        good = list(pipeline.deploy_source("keyerr", source(tmp_path, app=MARKED), "v1"))
        assert good[-1] == "corral-status: succeeded v1", good
        [old] = running.store.dynos("keyerr")
        broken = source(tmp_path, app='import os\nDB = os.environ["DATABASE_URL"]\n')
        lines = list(pipeline.deploy_source("keyerr", broken, "v2"))
        assert lines[-1] == "corral-status: failed"
        assert not any("is live" in line for line in lines), lines
        verdict = lines.index(
            " !     v2 failed to start: web.1 exited while booting; "
            "the previous release keeps serving."
        )
        shown = lines[verdict + 1 : -1]
        assert "       web.1: KeyError: 'DATABASE_URL'" in shown, shown
        assert not any("old-release-importing" in line for line in shown), shown
        assert running.store.current_release("keyerr").version == 1
        [still] = running.store.dynos("keyerr")
        assert (still.pid, still.state) == (old.pid, "up")
        [(_, port)] = backends(settings, "keyerr")
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "v-one"


def test_app_answering_500_at_root_fails_and_old_keeps_serving(settings, tmp_path) -> None:
    options = replace(OPTIONS, boot_timeout=4)
    with ManagerThread(settings, options) as running:
        running.store.create_app("fivehundred")
        pipeline = DeployPipeline(settings, running.store)
        list(pipeline.deploy_source("fivehundred", source(tmp_path), "v1"))
        erroring = APP.replace('return os.environ.get("GREETING", "v-one")', "return 1 / 0")
        lines = list(pipeline.deploy_source("fivehundred", source(tmp_path, app=erroring), "v2"))
        assert lines[-1] == "corral-status: failed"
        assert " !     v2 failed to start: web.1 did not pass the health check within 4s; " in (
            "\n".join(lines)
        )
        assert any("ZeroDivisionError" in line for line in lines), lines  # its own traceback
        [(_, port)] = backends(settings, "fivehundred")
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "v-one"


def test_released_says_why_nothing_is_routed_without_a_web_dyno(settings, tmp_path) -> None:
    with ManagerThread(settings, OPTIONS) as running:
        store = running.store
        store.create_app("quiet")
        pipeline = DeployPipeline(settings, store)
        worker = "worker: python -c 'import time; time.sleep(600)'\n"
        lines = list(pipeline.deploy_source("quiet", source(tmp_path, worker), "v1"))
        assert lines[-2:] == [
            "-----> Released v1 (no web process: nothing is routed; "
            "start one with `corral ps:scale worker=1`)",
            "corral-status: succeeded v1",
        ]
        store.scale("quiet", {"worker": 1})
        wait_managed(lambda: store.dynos("quiet"), message="worker.1")
        lines = list(pipeline.deploy_source("quiet", source(tmp_path, worker), "v2"))
        assert "-----> Released v2 (no web process: nothing is routed; running worker.1)" in lines
        both = "web: gunicorn app:app\n" + worker
        lines = list(pipeline.deploy_source("quiet", source(tmp_path, both), "v3"))
        assert lines[-1] == "corral-status: succeeded v3"
        store.scale("quiet", {"web": 0})
        lines = list(pipeline.deploy_source("quiet", source(tmp_path, both), "v4"))
        assert (
            "-----> Released v4 (web is scaled to 0: nothing is routed; "
            "scale it with `corral ps:scale web=1`)"
        ) in lines
        assert not any("is live" in line for line in lines)


def test_a_bad_settle_time_in_app_json_fails_the_release_saying_what_to_write(
    settings, tmp_path
) -> None:
    with ManagerThread(settings, OPTIONS) as running:
        running.store.create_app("settle")
        pipeline = DeployPipeline(settings, running.store)
        directory = source(tmp_path)
        (directory / "app.json").write_text('{"healthcheck": {"settle": "soon"}}')
        lines = list(pipeline.deploy_source("settle", directory, "v1"))
        assert lines[-1] == "corral-status: failed"
        assert (
            " !     v1 failed to start: app.json's healthcheck.settle is 'soon'; give a number "
            "of seconds from 0 to 300, such as 3; the app has no release serving yet."
        ) in lines
        assert running.store.dynos("settle") == []
