"""Atomic file replacement and the shell's view of a child's exit."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from corral.exitcodes import shell_status, signal_status
from corral.files import atomic_write


def test_atomic_write_replaces_the_file_with_the_mode_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "routes.json"
    path.write_text("old")
    umask = os.umask(0o077)  # a mode passed to open() would lose the group and other bits
    try:
        atomic_write(path, "new", mode=0o755)
    finally:
        os.umask(umask)
    assert path.read_text() == "new"
    assert path.stat().st_mode & 0o777 == 0o755
    assert [p.name for p in tmp_path.iterdir()] == ["routes.json"]


def test_atomic_write_is_private_by_default_and_takes_bytes(tmp_path: Path) -> None:
    path = tmp_path / "status"
    atomic_write(path, b'{"status": 0}')
    assert path.read_bytes() == b'{"status": 0}'
    assert path.stat().st_mode & 0o777 == 0o600


def test_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "marker"
    path.write_text("old")
    with pytest.raises(TypeError):
        atomic_write(path, 42)  # type: ignore[arg-type]
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["marker"]


def test_exit_codes_read_as_a_shell_reports_them() -> None:
    assert shell_status(0) == 0
    assert shell_status(3) == 3
    assert shell_status(-signal.SIGTERM) == 128 + 15
    assert signal_status(signal.SIGINT) == 130
