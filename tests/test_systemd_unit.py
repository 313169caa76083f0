"""``corral server --print-systemd-unit`` writes a unit systemd accepts as it is."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support.cli import cli_env, corral


def test_printed_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        if os.environ.get("CI"):
            raise AssertionError("systemd-analyze (Debian's systemd) must be installed in CI")
        pytest.skip("needs systemd-analyze (apt-get install -y systemd)")
    home = tmp_path / "corral home"
    printed = corral(
        "server", "--print-systemd-unit", "--home", str(home), "--https",
        "--acme-email", "ops@example.org", "--domain", "apps.example.org", "--no-kernel-limits",
        env=cli_env(tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    unit = printed.stdout
    assert "KillMode=process" in unit and "Restart=on-failure" in unit
    assert "LimitNOFILE=65536" in unit and f"CORRAL_HOME={home}" in unit
    assert "--https --acme-email ops@example.org --domain apps.example.org" in unit
    assert "--no-kernel-limits" in unit and "--home" not in unit
    assert not home.exists()  # printing starts nothing
    path = tmp_path / "corral.service"
    path.write_text(unit)
    verified = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    assert verified.returncode == 0, verified.stderr
    assert "corral.service" not in verified.stderr, verified.stderr  # no warning about it


def test_printing_a_unit_still_checks_the_options(tmp_path: Path) -> None:
    printed = corral(
        "server", "--print-systemd-unit", "--bind", "nowhere", env=cli_env(tmp_path), cwd=tmp_path
    )
    assert printed.returncode == 1 and "--bind 'nowhere' is not HOST:PORT" in printed.stderr
    assert "Traceback" not in printed.stderr
