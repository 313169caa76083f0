"""The dyno shim: stamped lines, exit status, and surviving its launcher."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from support.wait import wait_until

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00 (\w+)\[([\w.]+)\]: (.*)$")


def start_shim(tmp_path: Path, script: str, dyno: str = "web.1") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "corral.runtime.shim", "--log", str(tmp_path / "logs"),
         "--dyno", dyno, "--status", str(tmp_path / f"{dyno}.status"),
         "--", sys.executable, "-u", "-c", script],
        start_new_session=True,
    )  # fmt: skip


def log_lines(tmp_path: Path, dyno: str = "web.1") -> list[tuple[str, str, str]]:
    text = (tmp_path / "logs" / f"{dyno}.log").read_text()
    return [LINE.match(line).groups() for line in text.splitlines()]  # type: ignore[union-attr]


def test_lines_are_stamped_tagged_and_status_recorded(tmp_path: Path) -> None:
    script = "import sys; print('hello'); sys.stderr.write('oops\\npartial'); sys.exit(3)"
    shim = start_shim(tmp_path, script)
    assert shim.wait(timeout=30) == 3
    assert log_lines(tmp_path) == [
        ("app", "web.1", "hello"),
        ("app", "web.1", "oops"),
        ("app", "web.1", "partial"),
        ("corral", "web.1", "Process exited with status 3"),
    ]
    assert json.loads((tmp_path / "web.1.status").read_text())["status"] == 3


def test_sigterm_to_the_group_stops_the_dyno_and_the_shim_records_it(tmp_path: Path) -> None:
    script = "import time\nprint('up', flush=True)\nwhile True: time.sleep(1)"  # until stopped
    shim = start_shim(tmp_path, script)
    wait_until(lambda: (tmp_path / "logs" / "web.1.log").exists())
    wait_until(lambda: "up" in (tmp_path / "logs" / "web.1.log").read_text())
    os.killpg(shim.pid, signal.SIGTERM)
    assert shim.wait(timeout=30) == 128 + signal.SIGTERM
    assert log_lines(tmp_path)[-1] == ("corral", "web.1", "Process exited with signal 15")


def test_dyno_keeps_logging_after_its_launcher_is_killed(tmp_path: Path) -> None:
    # The launcher stands in for `corral server`: it starts the shim, then dies by SIGKILL.
    script = (
        "import time, sys\n"
        "for i in range(40):\n"
        "    print(f'tick {i}', flush=True); time.sleep(0.05)\n"  # logs for 2 s, after the kill
    )
    launcher_code = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-m', 'corral.runtime.shim', '--log', "
        f"{str(tmp_path / 'logs')!r}, '--dyno', 'web.1', '--status', "
        f"{str(tmp_path / 'web.1.status')!r}, '--', sys.executable, '-u', '-c', {script!r}], "
        "start_new_session=True)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"  # stays up until the test kills it
    )
    launcher = subprocess.Popen(
        [sys.executable, "-c", launcher_code], stdout=subprocess.PIPE, text=True
    )
    assert launcher.stdout is not None
    shim_pid = int(launcher.stdout.readline())
    launcher.kill()
    launcher.wait()
    assert psutil.pid_exists(shim_pid)
    wait_until(lambda: (tmp_path / "web.1.status").exists())
    ticks = [text for source, _, text in log_lines(tmp_path) if source == "app"]
    assert ticks == [f"tick {i}" for i in range(40)]


def test_the_shim_stays_small_and_writes_the_logs_own_format(tmp_path: Path) -> None:
    """The shim repeats two facts from corral.logfiles (it imports no corral module, to
    stay small beside every dyno): here they are held to their home."""
    import ast

    from corral import logfiles
    from corral.runtime import dyno, shim

    tree = ast.parse(Path(shim.__file__).read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported <= {"os", "select", "signal", "sys", "time", "ctypes"}, imported
    assert shim.MAX_LOG_BYTES == logfiles.MAX_LOG_BYTES
    assert shim.__file__ == dyno.SHIM
    shim_process = start_shim(tmp_path, "print('hello world')")
    assert shim_process.wait(timeout=30) == 0
    first = (tmp_path / "logs" / "web.1.log").read_text().splitlines()[0]
    parsed = logfiles.parse_line(first)
    assert parsed is not None and str(parsed) == first
    assert (parsed.source, parsed.dyno, parsed.message) == ("app", "web.1", "hello world")
