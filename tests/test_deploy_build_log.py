"""A build's log (its file, and ``corral logs --source build``) holds what people read: the
``corral-status:`` verdict line is for the pushing CLI only."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.config import Settings
from corral.deploy.pipeline import STATUS_PREFIX, DeployPipeline
from corral.runtime.logs import recent
from support.supervisor import OPTIONS, ManagerThread

pytestmark = pytest.mark.slow

APP = "from flask import Flask\napp = Flask(__name__)\napp.get('/')(lambda: 'hi')\n"


@pytest.fixture
def settings(tmp_path: Path, corral_home: Path) -> Settings:
    home = tmp_path / "home"
    home.mkdir()
    (corral_home / "cache").mkdir(exist_ok=True)
    (home / "cache").symlink_to(corral_home / "cache", target_is_directory=True)
    return Settings.load(home)


def test_status_line_never_reaches_the_build_log(settings: Settings, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "requirements.txt").write_text("flask\ngunicorn\n")
    (source / "app.py").write_text(APP)
    (source / "Procfile").write_text("web: gunicorn app:app\n")
    with ManagerThread(settings, OPTIONS) as running:
        running.store.create_app("hello")
        lines = list(DeployPipeline(settings, running.store).deploy_source("hello", source, "v1"))
        assert lines[-1] == f"{STATUS_PREFIX}succeeded v1"  # the CLI still gets its verdict
        [build] = running.store.builds("hello")
        written = Path(build.log_path).read_text()
        assert "-----> " in written and STATUS_PREFIX not in written
        built = [line.message for line in recent(settings.logs_dir("hello"), source="build")]
        assert built and not any(line.startswith(STATUS_PREFIX) for line in built)
