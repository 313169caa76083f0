"""Choosing the Python an app asks for, and finding it among installed interpreters."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.version import Version

from corral.builder.python import Interpreter, find_interpreter, python_request
from corral.errors import BuildError, PythonNotFound

INSTALLED = tuple(
    Interpreter(Version(v), Path(f"/py/{v}/bin/python3")) for v in ("3.13.0", "3.12.1", "3.11.7")
)


def test_python_version_file_comes_first(tmp_path: Path) -> None:
    (tmp_path / ".python-version").write_text("3.12\n")
    (tmp_path / "runtime.txt").write_text("python-3.11.7\n")
    request = python_request(tmp_path, {"project": {"requires-python": ">=3.13"}}, "3.11")
    assert request.origin == ".python-version"
    assert find_interpreter(request, INSTALLED).version == Version("3.12.1")


def test_runtime_txt_then_requires_python_then_default(tmp_path: Path) -> None:
    (tmp_path / "runtime.txt").write_text("python-3.11.7\n")
    assert python_request(tmp_path, {}, "3.13").origin == "runtime.txt"
    (tmp_path / "runtime.txt").unlink()
    request = python_request(tmp_path, {"project": {"requires-python": ">=3.12,<3.13"}}, "3.11")
    assert request.origin == "requires-python"
    assert find_interpreter(request, INSTALLED).version == Version("3.12.1")
    request = python_request(tmp_path, {}, "3.11")
    assert request.origin == "default"
    assert find_interpreter(request, INSTALLED).version == Version("3.11.7")


def test_exact_patch_version_must_match_exactly(tmp_path: Path) -> None:
    (tmp_path / ".python-version").write_text("3.12.9\n")
    with pytest.raises(PythonNotFound) as error:
        find_interpreter(python_request(tmp_path, {}, "3.11"), INSTALLED)
    assert "3.13.0, 3.12.1, 3.11.7" in error.value.message


def test_unknown_version_lists_installed_ones(tmp_path: Path) -> None:
    (tmp_path / ".python-version").write_text("3.99\n")
    with pytest.raises(PythonNotFound, match=r"3\.99.*installed versions: 3\.13\.0"):
        find_interpreter(python_request(tmp_path, {}, "3.11"), INSTALLED)


@pytest.mark.parametrize("text", ["pypy", "three", "3.x"])
def test_garbage_version_file_is_refused(tmp_path: Path, text: str) -> None:
    (tmp_path / ".python-version").write_text(text)
    with pytest.raises(BuildError, match="not a version"):
        python_request(tmp_path, {}, "3.11")
