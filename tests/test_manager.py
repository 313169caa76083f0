"""The process manager with real child processes: output, exits, signals, no leftovers."""

from __future__ import annotations

import io
import re
import sys
import time
from datetime import datetime
from pathlib import Path

import psutil
import pytest
from rich.console import Console

from corral.local.manager import Manager
from corral.local.printer import Printer
from corral.local.process import ProcessSpec, shell
from support.processes import base_environ
from support.wait import wait_until

pytestmark = pytest.mark.timeout(60)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class Run:
    """A manager printing into memory, with helpers to add python or shell processes."""

    def __init__(self, cwd: Path, **options: float) -> None:
        self.stream = io.StringIO()
        console = Console(file=self.stream, force_terminal=False, width=200)
        self.manager = Manager(Printer(console, clock=lambda: datetime(2026, 1, 1)), **options)
        self.cwd = cwd
        self.env = {**base_environ(cwd), "PYTHONUNBUFFERED": "1"}

    def python(self, name: str, code: str, cwd: Path | None = None) -> None:
        args = (sys.executable, "-c", code)
        self.manager.add(ProcessSpec(name, args, self.env, cwd or self.cwd))

    def sh(self, name: str, command: str) -> None:
        self.manager.add(ProcessSpec(name, shell(command), self.env, self.cwd))

    def run(self) -> int:
        return self.manager.run()

    @property
    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def output_of(self, name: str) -> list[str]:
        prefix = re.compile(rf"^00:00:00 {re.escape(name)} +\| ")
        return [prefix.sub("", line) for line in self.lines if prefix.match(line)]

    def pid_of(self, name: str) -> int:
        for line in self.output_of("system"):
            match = re.fullmatch(rf"{re.escape(name)} started with pid (\d+)", line)
            if match:
                return int(match.group(1))
        raise AssertionError(f"{name} never started:\n{self.stream.getvalue()}")


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path)


# A child that waits for a file to appear, so tests order events without sleeping.
WAIT_FOR = """
import os, sys, time
def wait_for(path):
    deadline = time.monotonic() + 30
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            sys.exit("gave up waiting for " + path)
        time.sleep(0.01)  # the child's own polling, bounded by its deadline
"""
#: A child that runs until the manager stops it.
STAYS_UP = "import time; time.sleep(60)"


def test_output_of_concurrent_processes_arrives_as_whole_lines(run: Run) -> None:
    # Each child writes every line in two halves and both wait for each other to finish,
    # so the lines race and every line is printed.
    for name, other in (("a", "b"), ("b", "a")):
        run.python(
            f"{name}.1",
            WAIT_FOR
            + f"""
for i in range(400):
    sys.stdout.write("{name}" * 50 + "-%d-" % i); sys.stdout.flush()
    sys.stdout.write("{name}" * 50 + "\\n"); sys.stdout.flush()
open("{name}.done", "w").close()
wait_for("{other}.done")
""",
        )
    assert run.run() == 0
    for name in ("a", "b"):
        lines = run.output_of(f"{name}.1")
        assert lines == [name * 50 + f"-{i}-" + name * 50 for i in range(400)]


def test_first_exit_stops_the_others_with_its_exit_code(run: Run) -> None:
    run.python("sleeper.1", STAYS_UP)
    run.sh("crash.1", "echo boom; exit 3")
    assert run.run() == 3
    system = run.output_of("system")
    assert run.output_of("crash.1") == ["boom"]
    assert system.index("crash.1 exited with code 3") < system.index(
        "sending SIGTERM to all processes"
    )
    assert "sleeper.1 was killed by SIGTERM" in system
    assert _gone(run.pid_of("sleeper.1"))


def test_a_crash_prints_its_output_before_its_exit_line(run: Run) -> None:
    run.python("web.1", "import sys; print('Traceback: oops'); sys.exit(2)")
    assert run.run() == 2
    assert run.lines.index("00:00:00 web.1  | Traceback: oops") < run.lines.index(
        "00:00:00 system | web.1 exited with code 2"
    )


def test_clean_exit_stops_the_others_with_code_zero(run: Run) -> None:
    run.python("sleeper.1", STAYS_UP)
    run.python("oneshot.1", "print('done')")
    assert run.run() == 0
    assert _gone(run.pid_of("sleeper.1"))


def test_what_a_process_started_is_stopped_with_it(run: Run, tmp_path: Path) -> None:
    run.sh("parent.1", "sleep 60 & echo $! > grandchild.pid; wait")
    run.python("trigger.1", WAIT_FOR + "wait_for('grandchild.pid'); sys.exit(5)")
    assert run.run() == 5
    grandchild = int((tmp_path / "grandchild.pid").read_text())
    wait_until(lambda: _gone(grandchild), 2, message="the grandchild to be stopped")


def test_exit_is_reported_even_when_something_keeps_its_output_open(run: Run) -> None:
    run.manager.drain = 0.2
    # The background sleep inherits stdout, so the output never closes on its own.
    run.sh("leaky.1", "sleep 60 & echo $! > leftover.pid; exit 4")
    assert run.run() == 4
    leftover = int((run.cwd / "leftover.pid").read_text())
    wait_until(lambda: _gone(leftover), 2, message="the leftover to be stopped")


def test_process_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    run = Run(tmp_path, grace=0.5)
    run.python(
        "stubborn.1",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "open('ready', 'w').close(); time.sleep(60)",  # stays up, deaf to SIGTERM
    )
    run.python("trigger.1", WAIT_FOR + "wait_for('ready')")
    started = time.monotonic()
    assert run.run() == 0
    assert time.monotonic() - started < 10
    system = run.output_of("system")
    assert "grace period of 0.5s is over" in system
    assert "sending SIGKILL to all processes" in system
    assert "stubborn.1 was killed by SIGKILL" in system
    assert _gone(run.pid_of("stubborn.1"))


@pytest.mark.parametrize(("signame", "code"), [("SIGTERM", 143), ("SIGINT", 130), ("SIGHUP", 129)])
def test_signal_to_the_manager_stops_everything(run: Run, signame: str, code: int) -> None:
    run.python("web.1", STAYS_UP)
    # A real signal to the manager's own process, sent by a child once it runs (and which
    # then stays up until stopped).
    run.python(
        "signaller.1",
        f"import os, signal, time; os.kill(os.getppid(), signal.{signame});time.sleep(60)",
    )
    assert run.run() == code
    system = run.output_of("system")
    assert f"{signame} received" in system
    assert "sending SIGTERM to all processes" in system
    assert _gone(run.pid_of("web.1"))
    assert _gone(run.pid_of("signaller.1"))


def test_second_signal_kills_at_once(tmp_path: Path) -> None:
    run = Run(tmp_path, grace=30)
    run.python(
        "signaller.1",
        "import os, signal, time\n"
        "got = []\n"
        "signal.signal(signal.SIGTERM, lambda *a: got.append(1))\n"
        "os.kill(os.getppid(), signal.SIGINT)\n"
        "deadline = time.monotonic() + 20\n"
        # its own polling for the manager's SIGTERM, then it stays up until killed
        "while not got and time.monotonic() < deadline: time.sleep(0.01)\n"
        "os.kill(os.getppid(), signal.SIGINT)\n"
        "time.sleep(60)\n",
    )
    started = time.monotonic()
    assert run.run() == 130
    assert time.monotonic() - started < 15
    system = run.output_of("system")
    assert "SIGINT received again" in system
    assert "sending SIGKILL to all processes" in system


def test_stop_request_from_another_thread_acts_like_sigterm(run: Run) -> None:
    import threading

    run.python("web.1", "import time; print('up', flush=True); time.sleep(60)")  # stays up
    thread = threading.Thread(
        target=lambda: (
            wait_until(lambda: "up" in run.stream.getvalue(), 10) and run.manager.request_stop()
        )
    )
    thread.start()
    assert run.run() == 143
    thread.join()


def test_process_killed_by_a_signal_gives_128_plus_its_number(run: Run) -> None:
    run.python("web.1", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    assert run.run() == 137
    assert "web.1 was killed by SIGKILL" in run.output_of("system")


def test_process_that_cannot_start_stops_the_rest(run: Run, tmp_path: Path) -> None:
    run.python("web.1", STAYS_UP)
    run.python("broken.1", "pass", cwd=tmp_path / "missing")
    assert run.run() == 1
    assert any(line.startswith("broken.1 could not start:") for line in run.output_of("system"))
    assert _gone(run.pid_of("web.1"))


def test_no_processes_means_nothing_to_do(run: Run) -> None:
    assert run.run() == 0
    assert run.lines == []


def test_names_must_be_unique(run: Run) -> None:
    run.python("web.1", "pass")
    with pytest.raises(ValueError, match="already added"):
        run.python("web.1", "pass")
