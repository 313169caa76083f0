"""The disk does not fill: old slugs and unused environments are removed, a slug over the
limit fails its build, a rollback to a removed slug says so, and apps:info shows disk use."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from corral.builder import build
from corral.builder.environment import MARKER, lock_path
from corral.builder.slug import METADATA, tree_size
from corral.config import Settings
from corral.deploy.disk import disk_use, prune
from corral.errors import BuildError, UserError
from corral.files import locked
from corral.store import Conflict, Dyno, Store
from support.cli import corral
from support.server import APP, git, make_repo, running_server

WEB = {"web": "gunicorn app:app"}


def _slug(settings: Settings, app: str, slug_id: str, env_hash: str) -> Path:
    """A slug on disk as the builder leaves it: its metadata names its environment."""
    path = settings.slugs_dir(app) / slug_id
    (path / METADATA).parent.mkdir(parents=True)
    (path / METADATA).write_text(json.dumps({"env_hash": env_hash}))
    (path / "app.py").write_text("x" * 1000)
    return path


def _environment(settings: Settings, env_hash: str, age: float) -> Path:
    """A finished environment last used ``age`` seconds ago."""
    path = settings.envs_dir / env_hash
    path.mkdir(parents=True)
    (path / MARKER).write_text("{}")
    then = time.time() - age
    os.utime(path / MARKER, (then, then))
    return path


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Settings, Store]]:
    settings = replace(Settings.load(tmp_path / "home"), keep_releases=2)
    with Store.for_settings(settings) as store:
        yield settings, store


def test_prune_keeps_the_window_the_current_and_running_releases_and_fresh_envs(home) -> None:
    settings, store = home
    store.create_app("tidy")
    slugs = {}
    for version in range(1, 6):
        slugs[version] = _slug(settings, "tidy", f"slug-{version}", f"env-{version}")
        release = store.create_release("tidy", f"slug-{version}", slugs[version], WEB, "Deploy")
        store.mark_release_succeeded("tidy", release.version)
    store.upsert_dyno(Dyno("tidy", "worker.1", "worker", 1, 99, 1.0, None, "up"))  # runs v1
    for version in range(1, 6):
        _environment(settings, f"env-{version}", age=7200)
    fresh = _environment(settings, "env-fresh", age=60)  # chosen by a build just now, maybe
    held = _environment(settings, "env-held", age=7200)
    with locked(lock_path(settings, "env-held")):  # being built or reused right now
        pruned = prune(settings, store, "tidy")
    assert sorted(pruned.slugs) == ["slug-2", "slug-3"]
    assert sorted(pruned.environments) == ["env-2", "env-3"]
    assert pruned.freed > 2000
    assert [v for v, path in slugs.items() if path.exists()] == [1, 4, 5]
    assert fresh.exists() and held.exists()
    assert sorted(p.name for p in settings.envs_dir.iterdir() if p.is_dir()) == [
        "env-1", "env-4", "env-5", "env-fresh", "env-held",
    ]  # fmt: skip
    assert not list(settings.slugs_dir("tidy").glob(".*"))  # nothing half-removed left

    with pytest.raises(Conflict) as refused:
        store.rollback("tidy", 3, keep=settings.keep_releases)
    assert refused.value.message == (
        "The slug of v3 was removed to free disk space (corral keeps the slugs of the last 2 "
        "releases of each app), so it cannot be restored; pick a newer release from "
        "`corral releases -a tidy`."
    )
    assert store.rollback("tidy", 1, keep=settings.keep_releases).slug_id == "slug-1"
    assert store.current_release("tidy").version == 5  # the refused rollback changed nothing


def test_a_pending_release_keeps_its_slug_outside_the_window(home) -> None:
    settings, store = home
    store.create_app("waiting")
    paths = [_slug(settings, "waiting", f"slug-{v}", "env") for v in range(1, 4)]
    for path in paths:
        store.mark_release_succeeded(
            "waiting", store.create_release("waiting", path.name, path, WEB, "Deploy").version
        )
    store.rollback("waiting", 1, keep=settings.keep_releases)  # v4, pending, runs slug-1
    store.create_release("waiting", "slug-3", paths[2], WEB, "Deploy")  # v5, v4 out of window
    assert prune(settings, store, "waiting").slugs == ["slug-2"]
    assert paths[0].exists() and not paths[1].exists()


def test_disk_use_counts_slugs_repository_and_logs(home) -> None:
    settings, _ = home
    _slug(settings, "sized", "slug-1", "env")
    (settings.logs_dir("sized")).mkdir(parents=True)
    (settings.logs_dir("sized") / "web.1.log").write_text("y" * 5000)
    use = disk_use(settings, "sized")
    assert use["logs"] == 5000 and use["repo"] == 0
    assert use["slugs"] == tree_size(settings.slugs_dir("sized")) > 1000
    assert use["total"] == use["slugs"] + use["logs"]


@pytest.mark.slow
def test_a_slug_over_the_limit_fails_its_build_saying_size_and_limit(
    tmp_path: Path, corral_home: Path
) -> None:
    source = tmp_path / "big"
    source.mkdir()
    (source / "requirements.txt").write_text("")
    (source / "Procfile").write_text("web: python -m http.server $PORT\n")
    (source / "data.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    settings = replace(Settings.load(corral_home), slug_max_mb=2)
    lines: list[str] = []
    with pytest.raises(BuildError) as failed:
        build(source, settings, app="big", emit=lines.append)
    message = failed.value.message
    assert message.startswith("The slug is ") and "over the 2 MB limit" in message, message
    assert "source 3.0 MB" in message and "$CORRAL_SLUG_MAX_MB" in message
    assert not list(settings.slugs_dir("big").iterdir())  # nothing left behind
    assert isinstance(failed.value, UserError)


@pytest.mark.slow
def test_deploys_remove_slugs_past_the_window_and_rollback_says_so(
    tmp_path: Path, corral_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORRAL_KEEP_RELEASES", "2")
    with running_server(tmp_path, corral_home) as server:
        server.api.post("/apps", json={"name": "lean"}).raise_for_status()
        repo = make_repo(tmp_path, server, "lean")
        git(repo, "push", "corral", "main")
        slugs = server.home / "apps" / "lean" / "slugs"
        [first] = list(slugs.iterdir())
        for version in ("v2", "v3"):
            (repo / "app.py").write_text(APP.replace("{version}", version))
            git(repo, "commit", "-qam", version)
            git(repo, "push", "corral", "main")
        assert not first.exists()
        assert len(list(slugs.iterdir())) == 2
        assert server.app_get("lean").text == "hello v3"
        log = server.api.get("/apps/lean/logs", params={"source": "corral"}).text
        assert "Removed 1 slug(s) older than the last 2 releases" in log

        rollback = corral("rollback", "v1", "-a", "lean", env=server.env, cwd=repo)
        assert rollback.returncode == 1 and "Traceback" not in rollback.stderr
        assert "The slug of v1 was removed to free disk space" in rollback.stderr
        assert "keeps the slugs of the last 2 releases" in rollback.stderr

        info = corral("apps:info", "-a", "lean", env=server.env, cwd=repo)
        assert info.returncode == 0, info.stderr
        [line] = [line for line in info.stdout.splitlines() if line.startswith("Disk use")]
        assert "slugs" in line and "repository" in line and "logs" in line
        as_json = json.loads(
            corral("apps:info", "-a", "lean", "--json", env=server.env, cwd=repo).stdout
        )
        use = as_json["disk_use"]
        assert set(use) == {"slugs", "repo", "logs", "total"} and use["slugs"] > 0
        assert use["total"] == use["slugs"] + use["repo"] + use["logs"]
