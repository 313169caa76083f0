"""Add-on names, config vars, URLs and the libpq environment, when a scheduled backup is
due (pure), the store's records of add-ons, and the sweep of destroyed add-ons' last
backups."""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.addons import backups
from corral.addons.naming import (
    attachment_var,
    database_url,
    identifier,
    new_addon_name,
    pg_environ,
    validate_var,
)
from corral.addons.schedule import Schedule, due
from corral.addons.servers import runs_as_others
from corral.config import Settings
from corral.errors import UserError
from corral.store import Conflict, Store
from corral.store.addons import new_addon


def test_the_first_database_is_database_url_and_a_second_gets_its_own_name() -> None:
    assert attachment_var("postgresql", "postgresql-amber-40213", {}) == "DATABASE_URL"
    taken = {"DATABASE_URL": "postgres://x"}
    assert attachment_var("postgresql", "postgresql-amber-40213", taken) == (
        "POSTGRESQL_AMBER_40213_URL"
    )


def test_new_names_avoid_taken_ones_and_make_valid_identifiers() -> None:
    name = new_addon_name("postgresql")
    assert name.startswith("postgresql-") and identifier(name).replace("_", "").isalnum()
    assert new_addon_name("postgresql", {name}) != name


@pytest.mark.parametrize("var", ["database_url", "REPORTS", "1_URL", "A-B_URL", "X" * 60 + "_URL"])
def test_malformed_attachment_vars_are_refused(var: str) -> None:
    with pytest.raises(UserError, match="_URL"):
        validate_var(var)


_PART = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=20)


@given(_PART, _PART, _PART, st.integers(1, 65535))
def test_a_database_url_gives_libpq_its_parts_back(
    role: str, password: str, database: str, port: int
) -> None:
    env = pg_environ(database_url(role, password, "127.0.0.1", port, database))
    assert env == {
        "PGHOST": "127.0.0.1", "PGPORT": str(port), "PGUSER": role,
        "PGPASSWORD": password, "PGDATABASE": database,
    }  # fmt: skip


def test_a_url_that_is_no_database_url_is_refused() -> None:
    with pytest.raises(UserError, match="postgres://"):
        pg_environ("redis://127.0.0.1:6379")


def test_the_store_keeps_addons_and_attachments_through_a_rename(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path / "home")
    with Store.for_settings(settings) as store:
        for app in ("alpha", "bravo"):
            store.create_app(app)
        store.create_addon(
            new_addon("pg-a", "alpha", "postgresql", "standard", "u"), "DATABASE_URL"
        )
        store.attach_addon("pg-a", "bravo", "SHARED_URL")
        with pytest.raises(Conflict, match="--as"):
            store.attach_addon("pg-a", "bravo", "SHARED_URL")
        store.rename_app("alpha", "alpine", tmp_path, tmp_path)
        assert store.get_addon("pg-a").app == "alpine"
        assert [(a.app, a.var) for a in store.attachments(addon="pg-a")] == [
            ("alpine", "DATABASE_URL"), ("bravo", "SHARED_URL"),
        ]  # fmt: skip
        with pytest.raises(sqlite3.IntegrityError):  # its databases must be destroyed first
            store.delete_app("alpine")
        store.delete_app("bravo")  # only attached: the attachment goes with it
        assert [a.app for a in store.attachments(addon="pg-a")] == ["alpine"]
        store.delete_addon("pg-a")
        assert store.addons() == [] and store.attachments() == []


def test_last_backups_of_destroyed_addons_go_after_the_documented_days(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path / "home")
    for name, age_days in (
        ("postgresql-old-1", backups.FINAL_KEEP_DAYS + 1),
        ("postgresql-new-2", 1),
    ):
        folder = settings.addons_dir / name / "backups"
        folder.mkdir(parents=True)
        (folder / "b001.dump").write_bytes(b"PGDMP")
        (folder.parent / "destroyed").write_text(f"{time.time() - age_days * 86400}\n")
    (settings.addons_dir / "postgresql-live-3" / "backups").mkdir(parents=True)
    assert backups.sweep(settings) == ["postgresql-old-1"]
    assert sorted(os.listdir(settings.addons_dir)) == ["postgresql-live-3", "postgresql-new-2"]


def _at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("at", "last", "now", "expected"),
    [
        ("02:00", None, "2026-12-02T01:00", True),  # never taken: at once
        ("02:00", "2026-12-01T02:00:05", "2026-12-02T01:59", False),  # yesterday's is done
        ("02:00", "2026-12-01T02:00:05", "2026-12-02T02:00", True),  # today's is due
        ("02:00", "2026-12-02T02:00:05", "2026-12-02T23:59", False),
        ("02:00", "2026-11-28T02:00:05", "2026-12-02T01:00", True),  # missed while down
        ("23:59", "2026-12-01T23:59:30", "2026-12-02T00:01", False),
    ],
)
def test_a_daily_backup_is_due_once_a_day_at_its_time(
    at: str, last: str | None, now: str, expected: bool
) -> None:
    assert due(at, None if last is None else _at(last), _at(now)) is expected


@pytest.mark.parametrize(("at", "keep"), [("2:00", 7), ("24:00", 7), ("02:60", 7), ("02:00", 0)])
def test_a_schedule_says_what_is_wrong_with_it(at: str, keep: int) -> None:
    with pytest.raises(UserError, match=r"--at|--keep"):
        Schedule(at, keep)


def test_the_home_stays_passable_while_an_addon_server_runs_as_its_own_user(
    tmp_path: Path,
) -> None:
    settings = Settings.load(tmp_path / "home")
    assert not runs_as_others(settings)
    conf = settings.addons_dir / "redis-amber-40213" / "redis.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("port 1\n")
    if (
        os.geteuid() == 0
        and not Path("/usr/bin/redis-server").exists()
        and not os.environ.get("CI")
    ):
        pytest.skip("the redis user comes with Debian's redis-server package")
    assert runs_as_others(settings)
