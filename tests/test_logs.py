"""Reading logs: merging files in time order, filters, rotation, following."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from corral.logfiles import LogFile, LogLine, append_line, format_line, parse_line, timestamp
from corral.runtime.logs import follow, recent


def stamp(second: int) -> str:
    return f"2026-11-24T10:00:{second:02d}.000000+00:00"


def write_line(log: LogFile, source: str, dyno: str, text: str) -> None:
    """As the shim writes: one stamped line, on disk before the next."""
    log.write(format_line(timestamp(), source, dyno, text) + "\n")
    log.flush()


def test_parse_and_format_round_trip() -> None:
    text = f"{stamp(1)} app[web.1]: GET / 200"
    assert str(parse_line(text)) == text
    router = parse_line(f"{stamp(2)} router: at=info method=GET")
    assert router == LogLine(stamp(2), "router", "", "at=info method=GET")
    assert parse_line("garbage") is None


def test_lines_from_all_files_come_back_in_time_order(tmp_path: Path) -> None:
    (tmp_path / "web.1.log").write_text(f"{stamp(1)} app[web.1]: a\n{stamp(4)} app[web.1]: d\n")
    (tmp_path / "web.1.log.1").write_text(f"{stamp(0)} app[web.1]: old\n")
    (tmp_path / "router.log").write_text(f"{stamp(2)} router: b\n")
    (tmp_path / "corral.log").write_text(f"{stamp(3)} corral[web.1]: c\n")
    assert [line.message for line in recent(tmp_path)] == ["old", "a", "b", "c", "d"]
    assert [line.message for line in recent(tmp_path, n=2)] == ["c", "d"]


def test_source_and_dyno_filters(tmp_path: Path) -> None:
    (tmp_path / "web.1.log").write_text(f"{stamp(1)} app[web.1]: w1\n")
    (tmp_path / "web.2.log").write_text(f"{stamp(2)} app[web.2]: w2\n")
    (tmp_path / "worker.1.log").write_text(f"{stamp(3)} app[worker.1]: k\n")
    (tmp_path / "router.log").write_text(f"{stamp(4)} router: r\n")
    assert [line.message for line in recent(tmp_path, source="router")] == ["r"]
    assert [line.message for line in recent(tmp_path, dyno="web.2")] == ["w2"]
    assert [line.message for line in recent(tmp_path, dyno="web")] == ["w1", "w2"]


def test_missing_directory_has_no_lines(tmp_path: Path) -> None:
    assert recent(tmp_path / "nope") == []


def test_follow_sees_new_lines_new_files_and_rotation(tmp_path: Path) -> None:
    (tmp_path / "web.1.log").write_text(f"{stamp(0)} app[web.1]: before\n")
    seen: list[str] = []
    deadline = time.monotonic() + 10
    polled = threading.Event()

    def reader() -> None:
        # a heartbeat comes after a poll that found nothing: the starting offsets are taken
        for line in follow(tmp_path, interval=0.02, stop=deadline, heartbeat=True):
            if line is None:
                polled.set()
                continue
            seen.append(line.message)
            if line.message == "last":
                return

    thread = threading.Thread(target=reader)
    thread.start()
    assert polled.wait(timeout=10), "the follower never polled"
    writer = LogFile(tmp_path / "web.1.log", max_bytes=350)
    for i in range(6):  # rotates the file once, after line 2
        write_line(writer, "app", "web.1", f"line {i} " + "x" * 40)
    writer.close()
    append_line(tmp_path, "router", LogLine(timestamp(), "router", "", "last"))
    thread.join(timeout=15)
    assert "before" not in seen
    assert seen[-1] == "last"
    assert seen == [f"line {i} " + "x" * 40 for i in range(6)] + ["last"]


def test_log_file_rotates_by_size(tmp_path: Path) -> None:
    writer = LogFile(tmp_path / "web.1.log", max_bytes=1000)
    for i in range(100):
        write_line(writer, "app", "web.1", f"line {i:03d} " + "x" * 20)
    writer.close()
    rotated = (tmp_path / "web.1.log.1").read_text().splitlines()
    current = (tmp_path / "web.1.log").read_text().splitlines()
    assert rotated and current[-1].endswith("line 099 " + "x" * 20)
    assert len((tmp_path / "web.1.log.1").read_bytes()) >= 1000


def test_held_lines_reach_the_file_at_flush_in_one_piece(tmp_path: Path) -> None:
    writer = LogFile(tmp_path / "router.log")
    writer.write(format_line(stamp(1), "router", "", "at=info n=1") + "\n")
    writer.write(format_line(stamp(2), "router", "", "at=info n=2") + "\n")
    assert (tmp_path / "router.log").read_text() == ""
    writer.flush()
    assert [line.message for line in recent(tmp_path)] == ["at=info n=1", "at=info n=2"]
    writer.close()


def test_log_files_are_the_platforms_only_whatever_the_umask(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        append_line(tmp_path, "corral", LogLine(stamp(1), "corral", "web.1", "up"))
    finally:
        os.umask(umask)
    assert (tmp_path / "corral.log").stat().st_mode & 0o777 == 0o600


def test_platform_lines_rotate_by_size_and_are_still_read(tmp_path: Path) -> None:
    for i in range(40):
        append_line(
            tmp_path, "corral", LogLine(timestamp(), "corral", "web.1", f"n{i:02d}"), max_bytes=600
        )
    assert (tmp_path / "corral.log.1").exists()
    assert (tmp_path / "corral.log").stat().st_size < 600 + 100
    messages = [line.message for line in recent(tmp_path, n=1000)]
    assert messages[-1] == "n39" and messages == sorted(messages)
