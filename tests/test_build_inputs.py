"""What an environment's key covers and what its installers see: local code a requirement
installs is hashed, and only the config vars in the hash reach the installers."""

from __future__ import annotations

import os
import shutil
import tempfile
import tomllib
from pathlib import Path

import pytest

from corral.appusers import AppUser
from corral.builder import build
from corral.builder.detect import detect
from corral.builder.inputs import dependency_inputs, local_reference
from corral.builder.locks import pylock_without_project
from corral.builder.ownership import blocked_for, runnable_copy
from corral.config import Settings
from corral.errors import BuildError
from support.sources import backend_package, write

#: A build backend that reports which config vars the installer passed on, then fails.
PROBE_BACKEND = """
import os

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    for name in ("UV_CORRAL_PROBE", "EVIL_PRELOAD"):
        print(f"SEEN {name}={os.environ.get(name, 'absent')}", flush=True)
    raise SystemExit(1)
"""

NOBODY = AppUser("probe", "nobody", 65534, 65534, Path("/nonexistent"))


def inputs_of(source: Path) -> dict[str, str]:
    return dependency_inputs(source, detect(source))


@pytest.mark.slow
def test_installers_see_only_the_config_vars_that_steer_them(tmp_path: Path, settings: Settings):
    source = write(
        tmp_path / "app",
        {
            "requirements.txt": "./probe\n",
            "app.py": "",
            "Procfile": "web: python app.py\n",
            **backend_package("probe", PROBE_BACKEND),
        },
    )
    lines: list[str] = []
    config = {"UV_CORRAL_PROBE": "steers", "EVIL_PRELOAD": "/tmp/evil.so"}
    with pytest.raises(BuildError):
        build(source, settings, app="probe", config=config, emit=lines.append)
    output = "\n".join(lines)
    assert "SEEN UV_CORRAL_PROBE=steers" in output
    assert "SEEN EVIL_PRELOAD=absent" in output


def test_a_local_path_requirement_keys_the_environment_by_the_code_it_installs(tmp_path: Path):
    def app(name: str, requirements: str, code: str) -> Path:
        return write(
            tmp_path / name,
            {"requirements.txt": requirements, "pkg/setup.py": code, "app.py": code},
        )

    one = inputs_of(app("one", "six\n./pkg\n", "print(1)\n"))
    same = inputs_of(app("same", "six\n./pkg\n", "print(1)\n"))
    other = inputs_of(app("other", "six\n./pkg\n", "print(2)\n"))
    assert one == same and one != other
    assert "local:pkg" in one
    editable = inputs_of(app("editable", "-e .\n", "print(1)\n"))
    assert editable != inputs_of(app("editable2", "-e .\n", "print(2)\n"))
    plain = inputs_of(app("plain", "six\n", "print(1)\n"))
    assert plain == inputs_of(app("plain2", "six\n", "print(2)\n"))  # code alone: same env


def test_each_lock_keys_the_environment_with_what_makes_it_stale(tmp_path: Path):
    poetry = {
        "pyproject.toml": '[project]\nname = "p"\nversion = "1"\ndependencies = ["six"]\n',
        "poetry.lock": "# lock 1\n",
    }
    first = inputs_of(write(tmp_path / "p1", poetry))
    assert first["manifest"] == "poetry.lock"
    bumped = {**poetry, "pyproject.toml": poetry["pyproject.toml"].replace('"1"', '"2"')}
    assert inputs_of(write(tmp_path / "p2", bumped)) == first  # the version: same lock
    relocked = {**poetry, "poetry.lock": "# lock 2\n"}
    assert inputs_of(write(tmp_path / "p3", relocked)) != first
    added = {**poetry, "pyproject.toml": poetry["pyproject.toml"].replace('"six"', '"six", "a"')}
    assert inputs_of(write(tmp_path / "p4", added)) != first  # a stale lock never reuses
    pipenv = {"Pipfile": "[packages]\n", "Pipfile.lock": "{}"}
    one = inputs_of(write(tmp_path / "e1", pipenv))
    assert (
        inputs_of(write(tmp_path / "e2", {**pipenv, "Pipfile": "[packages]\nsix = '*'\n"})) != one
    )
    pylock = {"pylock.toml": 'lock-version = "1.0"\n'}
    two = inputs_of(write(tmp_path / "l1", pylock))
    assert two["manifest"] == "pylock.toml"
    assert inputs_of(write(tmp_path / "l2", {"pylock.toml": "lock-version = '1.0'\n"})) != two


def test_a_pylock_is_installed_without_the_project_and_with_absolute_local_paths(tmp_path: Path):
    lock = """
        lock-version = "1.0"
        created-by = "uv"

        [[packages]]
        name = "six"
        version = "1.17.0"
        wheels = [{ url = "https://example.org/six.whl", hashes = { sha256 = "ab" } }]

        [[packages]]
        name = "app"
        directory = { path = ".", editable = true }

        [[packages]]
        name = "lib"
        directory = { path = "libs/lib" }

        [tool.uv]
        x = 1
    """
    source = write(tmp_path / "app", {"pylock.toml": lock})
    kept = tomllib.loads(pylock_without_project(source))
    assert [p["name"] for p in kept["packages"]] == ["six", "lib"]
    assert kept["packages"][1]["directory"]["path"] == str(source.resolve() / "libs" / "lib")
    assert kept["tool"] == {"uv": {"x": 1}}


def test_local_references_are_read_off_requirement_lines():
    assert local_reference("./pkg") == "./pkg"
    assert local_reference("-e .") == "."
    assert local_reference("--editable=../lib[extra]") == "../lib"
    assert local_reference("pkg @ file:///srv/pkg.whl") == "/srv/pkg.whl"
    assert local_reference("six==1.17.0") is None
    assert local_reference("# ./commented") is None


def test_programs_an_app_user_cannot_reach_are_named_and_copied_where_it_can():
    base = Path(tempfile.mkdtemp(dir="/tmp"))  # pytest's own tmp dirs are 0700
    try:
        _check_copies(base)
    finally:
        shutil.rmtree(base)


def _check_copies(tmp_path: Path) -> None:
    hidden = tmp_path / "hidden"
    hidden.mkdir(mode=0o700)
    program = hidden / "tool"
    program.write_text("#!/bin/sh\necho tool\n")
    program.chmod(0o755)
    assert blocked_for(program, NOBODY) is not None
    assert blocked_for(Path("/bin/sh"), NOBODY) is None
    with pytest.raises(BuildError, match="cannot run"):
        runnable_copy(str(program), NOBODY, hidden / "tools")
    tools = tmp_path / "public" / "tools"
    tmp_path.chmod(0o711)
    (tmp_path / "public").mkdir(mode=0o711)
    copy = Path(runnable_copy(str(program), NOBODY, tools))
    assert copy.parent == tools and copy.read_bytes() == program.read_bytes()
    assert copy.stat().st_mode & 0o777 == 0o755 and copy.stat().st_uid == os.geteuid()
    assert blocked_for(copy, NOBODY) is None
    assert runnable_copy("/bin/sh", NOBODY, tools) == "/bin/sh"
