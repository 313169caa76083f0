"""Deploys and one-off runs, as the API and the git hook perform them.

A deploy builds the source into a slug, runs the release phase, records a *pending*
release and waits while the supervisor rolls it out: the release succeeds only once its
web dynos passed their health checks. Deploys of one app are serialized; at most as many
builds run at once as the machine has cores. Every step yields text lines to stream back.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Generator, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO

from corral.appusers import AppUsers
from corral.builder import Slug, build
from corral.builder.slug import megabytes
from corral.config import Settings
from corral.deploy.changes import Changes
from corral.deploy.disk import prune
from corral.deploy.protocol import EXIT_PREFIX, STATUS_PREFIX
from corral.deploy.routed import wait_until_routed
from corral.deploy.tarball import extract
from corral.errors import UserError
from corral.exitcodes import shell_status
from corral.files import atomic_write, locked
from corral.logfiles import LogLine, append_line, timestamp
from corral.runtime import confined
from corral.runtime.confined import Confinement
from corral.runtime.environ import base_environ, process_environ
from corral.runtime.logs import Tail
from corral.runtime.oneoff import OneOffSpec, one_off_spec
from corral.store import DB_FILENAME, Conflict, Dyno, Release, Store, StoreBusy
from corral.store.formation import PHASES

__all__ = ["EXIT_PREFIX", "STATUS_PREFIX", "DeployPipeline", "deploy_lock"]

_DONE = object()
#: Seconds between looks at the release's status when nothing wakes the wait (no inotify).
_VERDICT_POLL = 0.25
#: The files of an app's log directory whose writes wake the wait (``corral.log``, rotated).
_LOG_NAMES = ("corral.",)


def _released_line(release: Release, url: str, running: list[Dyno]) -> str:
    """The success line: the URL only once a web dyno of ``release`` has served.

    ``running`` are the app's dynos; the supervisor records the new ones before it marks
    the release succeeded, and a web dyno is recorded only once it has answered HTTP.
    """
    mine = [d.name for d in running if d.release_version == release.version]
    if "web" not in release.process_types:
        types = [kind for kind in release.process_types if kind not in PHASES]
        if mine:
            hint = f"running {', '.join(mine)}"
        elif types:
            hint = f"start one with `corral ps:scale {types[0]}=1`"
        else:
            hint = "its Procfile declares no process to run"
        return f"-----> Released {release.name} (no web process: nothing is routed; {hint})"
    if any(name.startswith("web.") for name in mine):
        return f"-----> Released {release.name}: {url} is live"
    return (
        f"-----> Released {release.name} (web is scaled to 0: nothing is routed; "
        "scale it with `corral ps:scale web=1`)"
    )


def _verdict_lines(release: Release, released: str, *, first: bool = False) -> Iterator[str]:
    """What a deploy prints for the release's status, ending with the ``corral-status:`` line.

    ``first``: no release of the app has ever served, so none keeps serving.
    """
    if release.status == "succeeded":
        yield released
        yield STATUS_PREFIX + f"succeeded {release.name}"
        return
    if release.status == "failed":
        why = f": {release.failure_reason}" if release.failure_reason else ""
        keeps = "the previous release keeps serving"
        keeps = "the app has no release serving yet" if first else keeps
        yield f" !     {release.name} failed to start{why}; {keeps}."
        yield from (f"       {line}" for line in release.failure_excerpt)
    else:
        yield (
            f" !     {release.name} is still starting; "
            f"follow it with `corral logs --tail -a {release.app}`."
        )
    yield STATUS_PREFIX + "failed"


def deploy_lock(
    settings: Settings, app: str, *, blocking: bool = True
) -> AbstractContextManager[bool]:
    """The lock a deploy of ``app`` holds from build to verdict (see :func:`locked`)."""
    return locked(settings.apps_dir / app / "deploy.lock", blocking=blocking)


class DeployPipeline:
    """Builds, releases and runs apps on behalf of API requests and git pushes.

    Apps are announced at the settings' :meth:`~corral.config.Settings.app_url`.
    """

    def __init__(self, settings: Settings, store: Store, *, rollout_timeout: float = 150) -> None:
        self.settings = settings
        self.store = store
        self.rollout_timeout = rollout_timeout

    # -- deploys -----------------------------------------------------------------------

    def build_tarball(self, app: str, stream: BinaryIO) -> Iterator[str]:
        """Deploy an uploaded gzipped tarball of the source."""
        self.store.get_app(app)  # 404 before reading the upload
        with tempfile.TemporaryDirectory(prefix=f"corral-upload-{app}-") as tmp:
            source = Path(tmp)
            try:
                files = extract(stream, source)
            except UserError as exc:
                yield f" !     {exc.message}"
                yield STATUS_PREFIX + "failed"
                return
            yield f"-----> Received {files} files"
            yield from self.deploy_source(app, source, "Deploy from upload")

    def deploy_source(self, app: str, source: Path, description: str) -> Iterator[str]:
        """Build ``source`` and release it; the last line is the ``corral-status:`` verdict."""
        with deploy_lock(self.settings, app, blocking=False) as free:
            if not free:
                yield f"-----> Another deploy of {app} is in progress; waiting for it to finish"
        with deploy_lock(self.settings, app):
            try:
                yield from self._deploy_locked(app, source, description)
            except UserError as exc:
                yield f" !     {exc.message}"
                yield STATUS_PREFIX + "failed"

    def _deploy_locked(self, app: str, source: Path, description: str) -> Iterator[str]:
        self.store.get_app(app)  # it may have been destroyed while we waited
        record = self.store.create_build(app, description)
        log_path = self.settings.builds_dir / f"{record.id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as log:
            app_logs = self.settings.logs_dir(app)

            def emit(line: str) -> Iterator[str]:
                # the verdict line is for the pusher's CLI to read, not for people
                if not line.startswith(STATUS_PREFIX):
                    log.write(line + "\n")
                    log.flush()
                    # the app's log too, so `corral logs --source build` shows the latest builds
                    append_line(app_logs, "build", LogLine(timestamp(), "build", "", line))
                yield line

            self.store.update_build(record.id, status="running", log_path=log_path)
            slug: Slug | None = None
            with self._build_slot() as waited:
                if waited:
                    yield from emit("-----> Waiting for a free build slot")
                for item in self._build_lines(app, source):
                    if isinstance(item, Slug):
                        slug = item
                    else:
                        yield from emit(item)
            if slug is None:
                self.store.update_build(record.id, status="failed")
                yield from emit(STATUS_PREFIX + "failed")
                return
            self.store.update_build(record.id, status="succeeded", slug_id=slug.id)
            for line in self._release(app, slug, description):
                yield from emit(line)
        self._prune(app)

    def _prune(self, app: str) -> None:
        """Remove what the rollback window no longer needs; said in the app's log."""
        try:
            pruned = prune(self.settings, self.store, app)
        except (StoreBusy, OSError) as exc:  # the next deploy tries again
            message = f"Old slugs were not removed this time ({exc})"
        else:
            if not pruned.slugs and not pruned.environments:
                return
            message = (
                f"Removed {len(pruned.slugs)} slug(s) older than the last "
                f"{self.settings.keep_releases} releases and {len(pruned.environments)} unused "
                f"environment(s), freeing {megabytes(pruned.freed)}"
            )
        append_line(
            self.settings.logs_dir(app), "corral", LogLine(timestamp(), "corral", "", message)
        )

    @contextmanager
    def _build_slot(self) -> Iterator[bool]:
        """Hold one of ``cpu_count`` build slots, shared by every API process.

        Yields whether it had to wait for one.
        """
        count = os.cpu_count() or 1
        slots = [self.settings.run_dir / f"build-slot-{i}.lock" for i in range(count)]
        waited = False
        while True:
            for path in slots:
                with locked(path, blocking=False) as got:
                    if got:
                        yield waited
                        return
            waited = True
            time.sleep(0.2)

    def _build_lines(self, app: str, source: Path) -> Iterator[str | Slug]:
        """Run the builder in a thread, yielding its lines as they come, then the slug.

        The build sees the app's config vars, as on Heroku (``DISABLE_COLLECTSTATIC``, a
        private index's ``UV_INDEX_URL``).
        """
        lines: queue.Queue[object] = queue.Queue()
        config = self.store.config(app)  # read here: the store is not the build thread's

        def work() -> None:
            try:
                run_as = AppUsers(self.settings).ensure(app) if self.settings.isolation else None
                slug = build(
                    source, self.settings, app=app, config=config, emit=lines.put, run_as=run_as
                )
                lines.put(slug)
            except UserError as exc:
                for detail in exc.details:
                    lines.put(f"       {detail}")
                lines.put(f" !     {exc.message}")
            except Exception as exc:  # a bug: reported, and the push still fails cleanly
                lines.put(f" !     The build crashed ({type(exc).__name__}: {exc}).")
            finally:
                lines.put(_DONE)

        threading.Thread(target=work, daemon=True).start()
        while (item := lines.get()) is not _DONE:
            yield item  # type: ignore[misc]

    def _release(self, app: str, slug: Slug, description: str) -> Iterator[str]:
        config = self.store.config(app)
        output: list[str] = []
        if "release" in slug.process_types:
            yield "-----> Running release command"
            confinement = self._confinement(app)
            base = {**base_environ(), **confinement.environ()}
            env = process_environ(slug, base=base, config=config, dyno="release.1")
            spec = OneOffSpec(app, "release.1", ("/bin/sh", "-c", slug.process_types["release"]),
                              slug.path, env, 0, confinement)  # fmt: skip
            code = yield from _kept(self._stream(spec), output)
            if code != 0:
                yield f" !     Release command failed (exit status {code}); nothing changed."
                yield STATUS_PREFIX + "failed"
                return
        release = self.store.create_release(
            app,
            slug.id,
            slug.path,
            slug.process_types,
            f"{description}",
            config=config,
            status="pending",
        )
        if "release" in slug.process_types:  # kept for `corral releases:output`
            path = self.settings.release_output_path(app, release.version)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, "".join(line + "\n" for line in output), mode=0o644)
        yield f"-----> Launching {release.name}"
        yield from self._await_rollout(app, release.version)

    def _await_rollout(self, app: str, version: int) -> Iterator[str]:
        """Wait for the release's verdict in the store, relaying the dynos' progress meanwhile.

        The wait wakes when the store or the app's log is written (:class:`Changes`), so
        the verdict is seen within milliseconds of its commit. The verdict and why it
        failed come from the store alone. Of the platform's log only the new dynos'
        progress lines are relayed: release-wide lines and quoted dyno output repeat what
        the store holds, so whichever is written first, each shows once.
        """
        deadline = time.monotonic() + self.rollout_timeout
        logs = self.settings.logs_dir(app)  # made by the build's first line
        progress = Tail(logs, source="corral")
        serving_before = self.store.current_release(app) is not None
        with Changes(self.settings.home, logs, names=(DB_FILENAME, *_LOG_NAMES)) as changes:
            release = self.store.release(app, version)
            while True:
                # the supervisor logs a dyno's progress before it records the verdict
                for line in progress.poll():
                    if line.dyno and not line.message.startswith(" "):
                        yield f"       {line.dyno}: {line.message}"
                if release.status != "pending" or time.monotonic() >= deadline:
                    break
                changes.wait(min(_VERDICT_POLL, deadline - time.monotonic()))
                release = self.store.release(app, version)
        running = self.store.dynos(app) if release.status == "succeeded" else []
        released = _released_line(release, self.settings.app_url(app), running)
        if not serving_before and released.endswith(" is live"):
            wait_until_routed(self.settings, app)  # "live" only once the router says so too
        first = self.store.current_release(app) is None
        yield from _verdict_lines(release, released, first=first)

    # -- one-off dynos -------------------------------------------------------------------

    def run(self, app: str, command: list[str]) -> Iterator[str]:
        """Run ``command`` in the current release; the last line is ``corral-exit: N``."""
        release = self.store.current_release(app)
        if release is None:
            raise Conflict(f"{app} has no release yet; deploy it before running commands.")
        if not command or not all(isinstance(word, str) for word in command):
            raise UserError("Give the command to run as a list of strings.")
        spec = one_off_spec(release, command, confinement=self._confinement(app))
        code = yield from self._stream(spec)
        yield EXIT_PREFIX + str(code)

    def _confinement(self, app: str) -> Confinement:
        quota = self.store.get_app(app).memory_quota_mb
        return Confinement.for_app(self.settings, app, quota)

    def _stream(self, spec: OneOffSpec) -> Generator[str, None, int]:
        """Run ``spec`` as its app's process, yielding its output lines; return its status."""
        try:
            process, group = confined.start(
                list(spec.command), name=spec.name, python=spec.python,
                confinement=spec.confinement, cwd=spec.cwd, env=dict(spec.env),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True, text=True, errors="replace",
            )  # fmt: skip
        except OSError as exc:
            yield f"{spec.command[0]}: {exc.strerror}"
            return 127
        assert process.stdout is not None
        try:
            for line in process.stdout:
                yield line.rstrip("\n")
        except GeneratorExit:  # the client went away: so does the one-off
            os.killpg(process.pid, signal.SIGKILL)
            raise
        finally:
            process.stdout.close()
            code = process.wait()
            confined.release(group)
        return shell_status(code)


def _kept(lines: Generator[str, None, int], kept: list[str]) -> Generator[str, None, int]:
    """Yield what ``lines`` yields, keeping a copy in ``kept``; return what it returns."""
    try:
        while True:
            try:
                line = next(lines)
            except StopIteration as done:
                return done.value
            kept.append(line)
            yield line
    finally:
        lines.close()  # a client gone mid-phase: the command is killed, as without the copy
