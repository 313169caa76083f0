"""The store through its public API: apps, releases and config, formation, domains, builds,
dynos, tokens, and concurrent writers in several processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from corral.config import Settings
from corral.errors import UserError
from corral.store import Conflict, Dyno, Invalid, NotFound, Store, StoreBusy
from corral.store.schema import MIGRATIONS

WEB = {"web": "gunicorn app:app"}
WEB_AND_WORKER = {"web": "gunicorn app:app", "worker": "python worker.py"}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "corral.db"


@pytest.fixture
def store(db_path: Path):
    with Store.open(db_path) as opened:
        yield opened


def deploy(store: Store, app: str, slug: str, process_types=WEB, **kwargs):
    return store.create_release(
        app, slug, f"/slugs/{slug}", process_types, f"Deploy {slug}", **kwargs
    )


def rolled_out(store: Store, release):
    """Mark a pending config change or rollback succeeded, as the supervisor would."""
    return store.mark_release_succeeded(release.app, release.version)


# --- opening ---------------------------------------------------------------------------


def test_open_creates_the_file_in_wal_mode_with_the_schema_applied(db_path: Path) -> None:
    Store.open(db_path).close()
    raw = sqlite3.connect(db_path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    raw.close()


def test_reopening_keeps_the_data(db_path: Path) -> None:
    with Store.open(db_path) as first:
        first.create_app("hello")
    with Store.open(db_path) as second:
        assert [app.name for app in second.list_apps()] == ["hello"]


def test_for_settings_opens_corral_db_in_the_home(tmp_path: Path) -> None:
    with Store.for_settings(Settings.load(tmp_path / "home")) as opened:
        assert opened.path == (tmp_path / "home" / "corral.db").resolve()
        assert opened.path.exists()


def test_a_newer_schema_is_refused_with_advice_to_upgrade(db_path: Path) -> None:
    Store.open(db_path).close()
    raw = sqlite3.connect(db_path)
    raw.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    raw.close()
    with pytest.raises(UserError, match="upgrade corral"):
        Store.open(db_path)


# --- apps ------------------------------------------------------------------------------


def test_create_app_refuses_a_taken_name(store: Store) -> None:
    store.create_app("hello")
    with pytest.raises(Conflict, match="already taken") as caught:
        store.create_app("hello")
    assert caught.value.http_status == 409


def test_create_app_without_a_name_picks_a_valid_random_one(store: Store) -> None:
    app = store.create_app()
    assert store.get_app(app.name) == app
    assert app.current_release is None and not app.maintenance


@pytest.mark.parametrize("name", ["../x", "UPPER", "a" * 40, "", "api"])
def test_create_app_refuses_invalid_names(store: Store, name: str) -> None:
    with pytest.raises(Invalid):
        store.create_app(name)
    assert store.list_apps() == []


def test_an_unknown_app_is_not_found_with_a_hint(store: Store) -> None:
    for call in (
        lambda: store.get_app("nope"),
        lambda: store.releases("nope"),
        lambda: store.config("nope"),
        lambda: store.formation("nope"),
        lambda: store.set_config("nope", {"A": "1"}),
        lambda: store.delete_app("nope"),
    ):
        with pytest.raises(NotFound, match="corral apps") as caught:
            call()
        assert caught.value.http_status == 404


def test_list_apps_is_sorted_by_name(store: Store) -> None:
    for name in ("zeta", "alpha", "mid"):
        store.create_app(name)
    assert [app.name for app in store.list_apps()] == ["alpha", "mid", "zeta"]


def test_maintenance_mode_toggles(store: Store) -> None:
    store.create_app("hello")
    assert store.set_maintenance("hello", True).maintenance
    assert store.get_app("hello").maintenance
    assert not store.set_maintenance("hello", False).maintenance


def test_delete_app_removes_everything_it_owns(store: Store) -> None:
    store.create_app("hello")
    deploy(store, "hello", "s1")
    rolled_out(store, store.set_config("hello", {"A": "1"}))
    store.add_domain("hello", "www.example.com")
    store.create_build("hello", "main")
    store.delete_app("hello")
    assert store.list_apps() == []
    assert store.domains() == []
    store.create_app("hello")  # the name is free again, and starts from scratch
    assert store.releases("hello") == []
    assert store.config("hello") == {}
    assert store.builds("hello") == []
    assert deploy(store, "hello", "s2").version == 1


# --- releases and config ---------------------------------------------------------------


def test_release_versions_count_up_from_one_per_app(store: Store) -> None:
    store.create_app("one")
    store.create_app("two")
    assert [deploy(store, "one", f"s{i}").version for i in range(3)] == [1, 2, 3]
    assert deploy(store, "two", "t").version == 1
    assert [release.version for release in store.releases("one")] == [3, 2, 1]
    assert store.current_release("one").slug_id == "s2"
    assert store.get_app("one").current_release == 3


def test_config_set_before_the_first_deploy_is_snapshotted_by_it(store: Store) -> None:
    store.create_app("hello")
    assert store.set_config("hello", {"SECRET_KEY": "s3cret"}) is None
    assert store.releases("hello") == []
    assert store.config("hello") == {"SECRET_KEY": "s3cret"}
    release = deploy(store, "hello", "s1")
    assert release.config == {"SECRET_KEY": "s3cret"}


def test_set_config_makes_a_new_release_with_the_same_slug(store: Store) -> None:
    store.create_app("hello")
    first = deploy(store, "hello", "s1", process_types=WEB_AND_WORKER)
    release = store.set_config("hello", {"SECRET_KEY": "x", "DEBUG": "1"})
    assert (release.version, release.status) == (2, "pending")
    assert release.description == "Set SECRET_KEY, DEBUG config vars"
    assert (release.slug_id, release.slug_path) == ("s1", Path("/slugs/s1"))
    assert release.process_types == WEB_AND_WORKER
    assert release.config == {"SECRET_KEY": "x", "DEBUG": "1"}
    # live only once its dynos have started: until then the old release and config serve
    assert store.current_release("hello") == first
    assert store.config("hello") == {}
    done = rolled_out(store, release)
    assert store.current_release("hello") == done
    assert store.config("hello") == {"SECRET_KEY": "x", "DEBUG": "1"}


def test_a_config_change_that_fails_to_start_never_becomes_current(store: Store) -> None:
    store.create_app("hello")
    first = deploy(store, "hello", "s1")
    release = store.set_config("hello", {"A": "1"})
    store.mark_release_failed("hello", release.version, reason="web.1 exited", excerpt=["boom"])
    assert store.current_release("hello") == first
    assert store.config("hello") == {}
    # nothing is left pending, so the next change goes ahead
    assert rolled_out(store, store.set_config("hello", {"A": "2"})).config == {"A": "2"}


def test_a_pending_change_a_deploy_overtook_fails_rather_than_block_config(store: Store) -> None:
    store.create_app("hello")
    deploy(store, "hello", "s1")
    change = store.set_config("hello", {"A": "1"})
    rolled_out(store, deploy(store, "hello", "s2", status="pending"))
    overtaken = store.release("hello", change.version)
    assert (overtaken.status, overtaken.failure_reason) == (
        "failed",
        "v3 was released before it rolled out",
    )
    assert store.set_config("hello", {"B": "1"}).status == "pending"


def test_unset_config_makes_a_release_naming_the_removed_vars(store: Store) -> None:
    store.create_app("hello")
    deploy(store, "hello", "s1")
    rolled_out(store, store.set_config("hello", {"SECRET_KEY": "x", "DEBUG": "1"}))
    release = rolled_out(store, store.set_config("hello", {}, ["DEBUG"]))
    assert release.description == "Remove DEBUG config vars"
    assert store.config("hello") == {"SECRET_KEY": "x"}
    assert store.release("hello", 2).config == {"SECRET_KEY": "x", "DEBUG": "1"}  # unchanged


def test_set_config_that_changes_nothing_makes_no_release(store: Store) -> None:
    store.create_app("hello")
    deploy(store, "hello", "s1")
    first = rolled_out(store, store.set_config("hello", {"A": "1"}))
    assert store.set_config("hello", {"A": "1"}, ["NOT_SET"]) == first
    assert len(store.releases("hello")) == 2


def test_set_config_refuses_bad_keys_and_values(store: Store) -> None:
    store.create_app("hello")
    with pytest.raises(Invalid, match="PORT is set by corral"):
        store.set_config("hello", {"PORT": "80"})
    with pytest.raises(Invalid, match="not a valid config var name"):
        store.set_config("hello", {"MY-KEY": "1"})
    with pytest.raises(Invalid, match="both set and unset"):
        store.set_config("hello", {"A": "1"}, ["A"])
    with pytest.raises(Invalid, match="NUL"):
        store.set_config("hello", {"A": "\0"})
    assert store.config("hello") == {}


def test_rollback_restores_slug_and_config_as_a_new_release(store: Store) -> None:
    store.create_app("hello")
    store.set_config("hello", {"GREETING": "hi"})
    deploy(store, "hello", "s1")
    deploy(store, "hello", "s2", process_types=WEB_AND_WORKER)
    rolled_out(store, store.set_config("hello", {"GREETING": "hello"}))  # v3
    release = store.rollback("hello", 1)
    assert (release.version, release.status) == (4, "pending")
    assert store.current_release("hello").version == 3  # until its dynos have started
    release = rolled_out(store, release)
    assert release.version == 4
    assert release.description == "Rollback to v1"
    assert (release.slug_id, release.config, release.process_types) == (
        "s1",
        {"GREETING": "hi"},
        WEB,
    )
    assert store.current_release("hello") == release
    assert store.config("hello") == {"GREETING": "hi"}
    assert [r.version for r in store.releases("hello")] == [4, 3, 2, 1]  # history kept


def test_rollback_defaults_to_the_last_good_release_before_the_current_one(store: Store) -> None:
    store.create_app("hello")
    deploy(store, "hello", "s1")
    deploy(store, "hello", "s2")
    failed = deploy(store, "hello", "s3", status="pending")
    store.mark_release_failed("hello", failed.version)
    deploy(store, "hello", "s4")
    release = rolled_out(store, store.rollback("hello"))
    assert (release.description, release.slug_id) == ("Rollback to v2", "s2")
    assert store.rollback("hello").description == "Rollback to v4"  # undo the rollback


def test_rollback_refuses_what_it_cannot_do(store: Store) -> None:
    store.create_app("hello")
    with pytest.raises(Conflict, match="no releases yet"):
        store.rollback("hello")
    deploy(store, "hello", "s1")
    with pytest.raises(Conflict, match="v1 is the first release"):
        store.rollback("hello")
    with pytest.raises(Conflict, match="v1 is already the current release"):
        store.rollback("hello", 1)
    with pytest.raises(NotFound, match="no release v9"):
        store.rollback("hello", 9)
    pending = deploy(store, "hello", "s2", status="pending")
    store.mark_release_failed("hello", pending.version)
    with pytest.raises(Conflict, match="v2 of hello is failed"):
        store.rollback("hello", 2)
    assert len(store.releases("hello")) == 2


def test_failed_release_never_becomes_current(store: Store) -> None:
    store.create_app("hello")
    good = deploy(store, "hello", "s1")
    pending = deploy(store, "hello", "s2", status="pending")
    assert store.current_release("hello") == good
    assert store.mark_release_failed("hello", pending.version).status == "failed"
    assert store.current_release("hello") == good
    with pytest.raises(Conflict, match="failed; deploy again"):
        store.mark_release_succeeded("hello", pending.version)
    with pytest.raises(Conflict, match="already succeeded"):
        store.mark_release_failed("hello", good.version)


def test_failed_release_records_why_with_its_status(store: Store) -> None:
    store.create_app("hello")
    pending = deploy(store, "hello", "s1", status="pending")
    assert (pending.failure_reason, pending.failure_excerpt) == (None, ())
    failed = store.mark_release_failed(
        "hello", pending.version, reason="web.1 exited while booting", excerpt=["web.1: boom"]
    )
    assert failed == store.release("hello", pending.version)
    assert (failed.status, failed.failure_reason) == ("failed", "web.1 exited while booting")
    assert failed.failure_excerpt == ("web.1: boom",)
    again = store.mark_release_failed("hello", pending.version)  # a later sweep, saying nothing
    assert (again.failure_reason, again.failure_excerpt) == (
        failed.failure_reason,
        ("web.1: boom",),
    )


def test_pending_release_becomes_current_when_it_succeeds(store: Store) -> None:
    store.create_app("hello")
    pending = deploy(store, "hello", "s1", status="pending", config={"A": "1"})
    assert store.current_release("hello") is None
    assert store.formation("hello") == []
    done = store.mark_release_succeeded("hello", pending.version)
    assert done.status == "succeeded"
    assert store.current_release("hello") == done
    assert store.config("hello") == {"A": "1"}
    assert store.mark_release_succeeded("hello", pending.version) == done  # idempotent


def test_an_older_release_succeeding_late_does_not_replace_a_newer_one(store: Store) -> None:
    store.create_app("hello")
    older = deploy(store, "hello", "s1", status="pending")
    newer = deploy(store, "hello", "s2")
    store.mark_release_succeeded("hello", older.version)
    assert store.current_release("hello") == newer


def test_config_changes_and_rollbacks_wait_for_a_pending_release(store: Store) -> None:
    store.create_app("hello")
    deploy(store, "hello", "s1")
    deploy(store, "hello", "s2")
    deploy(store, "hello", "s3", status="pending")
    with pytest.raises(Conflict, match="v3 of hello is still rolling out; wait for it"):
        store.set_config("hello", {"A": "1"})
    with pytest.raises(Conflict, match="still rolling out"):
        store.rollback("hello")


# --- formation -------------------------------------------------------------------------


def test_first_release_with_web_runs_one_web_dyno(store: Store) -> None:
    store.create_app("hello")
    deploy(store, "hello", "s1", process_types=WEB_AND_WORKER)
    assert [(e.process_type, e.quantity) for e in store.formation("hello")] == [
        ("web", 1),
        ("worker", 0),
    ]
    store.scale("hello", {"web": 0, "worker": 2})
    deploy(store, "hello", "s2", process_types=WEB_AND_WORKER)  # keeps the chosen scale
    assert [(e.process_type, e.quantity) for e in store.formation("hello")] == [
        ("web", 0),
        ("worker", 2),
    ]


def test_release_without_web_starts_nothing(store: Store) -> None:
    store.create_app("jobs")
    deploy(store, "jobs", "s1", process_types={"worker": "python w.py"})
    assert [(e.process_type, e.quantity) for e in store.formation("jobs")] == [("worker", 0)]


def test_scale_names_the_valid_process_types_when_given_an_unknown_one(store: Store) -> None:
    store.create_app("hello")
    deploy(store, "hello", "s1", process_types=WEB_AND_WORKER)
    with pytest.raises(
        Invalid, match="no process type wrker; its current release has: web, worker"
    ):
        store.scale("hello", {"wrker": 1})


@pytest.mark.parametrize("quantity", [-1, 101, 1.5, "2", True])
def test_scale_refuses_quantities_outside_0_to_100(store: Store, quantity: object) -> None:
    store.create_app("hello")
    deploy(store, "hello", "s1")
    with pytest.raises(Invalid, match="from 0 to 100"):
        store.scale("hello", {"web": quantity})
    assert store.formation("hello")[0].quantity == 1


def test_scale_before_any_release_is_refused(store: Store) -> None:
    store.create_app("hello")
    with pytest.raises(Conflict, match="no release yet"):
        store.scale("hello", {"web": 1})


def test_formation_only_lists_process_types_of_the_current_release(store: Store) -> None:
    store.create_app("hello")
    deploy(store, "hello", "s1", process_types=WEB_AND_WORKER)
    store.scale("hello", {"worker": 3})
    deploy(store, "hello", "s2", process_types=WEB)
    assert [(e.process_type, e.quantity) for e in store.formation("hello")] == [("web", 1)]


def test_the_release_phase_is_never_in_the_formation_nor_scaled(store: Store) -> None:
    store.create_app("hello")
    deploy(store, "hello", "s1", process_types={**WEB_AND_WORKER, "release": "migrate"})
    assert [e.process_type for e in store.formation("hello")] == ["web", "worker"]
    with pytest.raises(Invalid) as refused:
        store.scale("hello", {"release": 1, "web": 2})
    assert str(refused.value) == (
        "release is the release phase, which each deploy runs once before its release "
        "starts; it is not a process type to scale. Scale one of: web, worker."
    )
    assert [e.quantity for e in store.formation("hello")] == [1, 0]  # nothing changed


# --- domains ---------------------------------------------------------------------------


def test_domains_are_normalised_unique_and_removable(store: Store) -> None:
    store.create_app("one")
    store.create_app("two")
    assert store.add_domain("one", "WWW.Example.com").hostname == "www.example.com"
    with pytest.raises(Conflict, match="already added to the app 'one'"):
        store.add_domain("two", "www.example.com")
    with pytest.raises(Conflict, match="already added to this app"):
        store.add_domain("one", "www.example.com.")
    with pytest.raises(Invalid, match="not a valid hostname"):
        store.add_domain("two", "not a host")
    store.add_domain("two", "api.example.com")
    assert [d.hostname for d in store.domains("one")] == ["www.example.com"]
    assert [(d.hostname, d.app) for d in store.domains()] == [
        ("api.example.com", "two"),
        ("www.example.com", "one"),
    ]
    with pytest.raises(NotFound, match="not a domain of two"):
        store.remove_domain("two", "www.example.com")
    store.remove_domain("one", "www.example.com")
    assert store.domains("one") == []


# --- builds ----------------------------------------------------------------------------


def test_builds_record_status_slug_and_finish_time(store: Store) -> None:
    store.create_app("hello")
    build = store.create_build("hello", "abc123", log_path="/logs/b.log")
    assert (build.status, build.finished_at, build.log_path) == (
        "pending",
        None,
        Path("/logs/b.log"),
    )
    running = store.update_build(build.id, status="running")
    assert running.finished_at is None
    done = store.update_build(build.id, status="succeeded", slug_id="s1")
    assert (done.status, done.slug_id, done.log_path) == ("succeeded", "s1", Path("/logs/b.log"))
    assert done.finished_at is not None
    second = store.create_build("hello", "def456", build_id="b2")
    assert store.get_build("b2") == second
    assert [b.id for b in store.builds("hello")] == ["b2", build.id]
    with pytest.raises(NotFound):
        store.get_build("missing")
    with pytest.raises(NotFound):
        store.create_build("nope", "abc")


# --- dynos -----------------------------------------------------------------------------


def make_dyno(name: str, app: str = "hello", **changes: object) -> Dyno:
    fields = dict(
        app=app,
        name=name,
        process_type=name.split(".")[0],
        release_version=1,
        pid=4242,
        pid_start_time=1700000000.25,
        port=5000,
        state="up",
        since=1700000001.0,
    )
    return Dyno(**{**fields, **changes})


def test_dynos_are_upserted_listed_in_order_and_deleted(store: Store) -> None:
    store.create_app("hello")
    for name in ("web.10", "worker.1", "web.2", "web.1"):
        store.upsert_dyno(make_dyno(name))
    assert [d.name for d in store.dynos("hello")] == ["web.1", "web.2", "web.10", "worker.1"]
    crashed = make_dyno("web.2", state="crashed", pid=None, restarts=3, next_restart_at=17.5)
    store.upsert_dyno(crashed)
    assert [d for d in store.dynos("hello") if d.name == "web.2"] == [crashed]
    assert store.delete_dyno("hello", "web.2")
    assert not store.delete_dyno("hello", "web.2")
    assert len(store.dynos()) == 3


def test_dynos_of_a_deleted_app_stay_listed_for_the_manager_to_stop(store: Store) -> None:
    store.create_app("hello")
    store.upsert_dyno(make_dyno("web.1"))
    store.delete_app("hello")
    assert [(d.app, d.name) for d in store.dynos()] == [("hello", "web.1")]


# --- tokens ----------------------------------------------------------------------------


def test_tokens_verify_only_their_own_secret_until_deleted(store: Store) -> None:
    laptop, secret = store.create_token("laptop")
    ci, ci_secret = store.create_token("ci")
    assert store.verify_token(secret) == laptop
    assert store.verify_token(ci_secret) == ci
    for wrong in ("", "nope", secret[:-1], secret + "x", ci_secret.replace(ci.id, laptop.id)):
        assert store.verify_token(wrong) is None
    assert store.tokens() == [laptop, ci]
    store.delete_token(laptop.id)
    assert store.verify_token(secret) is None
    with pytest.raises(NotFound):
        store.delete_token(laptop.id)
    with pytest.raises(Invalid):
        store.create_token("  ")


def test_tokens_are_stored_hashed(store: Store, db_path: Path) -> None:
    token, secret = store.create_token("laptop")
    random_part = secret.removeprefix(f"corral_{token.id}_").encode()
    assert len(random_part) >= 40

    def stored_bytes() -> bytes:
        return b"".join(p.read_bytes() for p in db_path.parent.glob("corral.db*"))

    assert secret.encode() not in stored_bytes()
    assert random_part not in stored_bytes()
    store.close()  # checkpoints the WAL into the main file
    assert random_part not in stored_bytes()


# --- concurrency -----------------------------------------------------------------------


def _write_releases(db_path: str, start: threading.Event, count: int, writer: int) -> None:
    with Store.open(db_path) as own:
        start.wait(30)
        for index in range(count):
            deploy(own, "busy", f"slug-{index}")
            if index % 3 == 0:
                # unique per writer: a value equal to the current one would make no release
                while True:
                    try:
                        change = own.set_config("busy", {"LAST": f"{writer}-{index}"})
                    except Conflict:  # another writer's change is rolling out
                        continue
                    rolled_out(own, change)
                    break


def test_release_versions_are_unique_under_concurrent_writers(db_path: Path) -> None:
    with Store.open(db_path) as store:
        store.create_app("busy")
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    writers, per_writer = 4, 12
    processes = [
        context.Process(target=_write_releases, args=(str(db_path), start, per_writer, writer))
        for writer in range(writers)
    ]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    with Store.open(db_path) as store:
        versions = sorted(release.version for release in store.releases("busy"))
        expected = writers * (per_writer + len(range(0, per_writer, 3)))
        assert versions == list(range(1, expected + 1))
        assert store.current_release("busy").version == expected


def _open_and_create(db_path: str, start: threading.Event, name: str) -> None:
    start.wait(30)
    with Store.open(db_path) as own:
        own.create_app(name)


def test_processes_opening_a_new_store_at_once_apply_the_schema_once(db_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    names = [f"app-{index}" for index in range(6)]
    processes = [
        context.Process(target=_open_and_create, args=(str(db_path), start, name)) for name in names
    ]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    with Store.open(db_path) as store:
        assert [app.name for app in store.list_apps()] == names


def test_an_open_sqlite_refuses_at_once_as_locked_is_tried_again(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Processes opening a new file at once can deadlock on its first locks, and SQLite
    # then fails one of them at once ("database is locked") instead of waiting: too rare
    # to race for here, so the first attempt is made to fail the way SQLite does.
    from corral.store import _db

    real, calls = _db._connect, []

    def refused_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        return real(*args, **kwargs)

    monkeypatch.setattr(_db, "_connect", refused_once)
    with Store.open(db_path) as store:
        store.create_app("opened")
        assert [app.name for app in store.list_apps()] == ["opened"]
    assert len(calls) == 2


def test_an_open_that_stays_refused_says_the_store_is_busy(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from corral.store import _db

    def refused(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(_db, "_connect", refused)
    with pytest.raises(StoreBusy):
        Store.open(db_path, busy_timeout=0.2)


def test_threads_can_share_one_store(store: Store) -> None:
    store.create_app("busy")
    with ThreadPoolExecutor(max_workers=8) as pool:
        versions = list(pool.map(lambda i: deploy(store, "busy", f"s{i}").version, range(40)))
    assert sorted(versions) == list(range(1, 41))


def test_a_writer_waits_for_another_connection_holding_the_write_lock(
    store: Store, db_path: Path
) -> None:
    holder = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO apps (name, created_at) VALUES ('held', 0)")
    release_lock = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
    release_lock.start()
    store.create_app("waiter")  # blocks on the busy timeout instead of failing
    release_lock.join()
    holder.close()
    assert [app.name for app in store.list_apps()] == ["held", "waiter"]


def _use_inherited_store(store: Store) -> None:
    store.create_app("from-child")


def test_a_store_inherited_across_fork_reconnects(store: Store) -> None:
    store.create_app("parent")
    child = multiprocessing.get_context("fork").Process(target=_use_inherited_store, args=(store,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert [app.name for app in store.list_apps()] == ["from-child", "parent"]


def test_app_summaries_tell_status_release_and_dynos_in_one_read(store: Store) -> None:
    for name in ("busy", "down", "idle", "live"):
        store.create_app(name)
    deploy(store, "live", "s1")
    deploy(store, "down", "s1")
    deploy(store, "busy", "s1")
    store.create_release("busy", "s2", Path("/slugs/s2"), WEB, "Deploy 2", status="pending")
    for app, name, state in [
        ("live", "web.1", "up"),
        ("live", "web.2", "up"),
        ("down", "web.1", "crashed"),
    ]:
        store.upsert_dyno(Dyno(app, name, "web", 1, None, None, None, state, since=1.0))
    summaries = {summary.app.name: summary for summary in store.app_summaries()}
    assert list(summaries) == ["busy", "down", "idle", "live"]
    assert {name: s.status for name, s in summaries.items()} == {
        "busy": "deploying", "down": "crashed", "idle": "idle", "live": "up",
    }  # fmt: skip
    assert summaries["live"].dynos == {"web": {"up": 2}}
    assert summaries["live"].release.version == 1 and summaries["idle"].release is None
    assert store.app_summary("down").status == "crashed"
    with pytest.raises(NotFound):
        store.app_summary("ghost")


def test_a_running_build_counts_as_deploying_until_marked_failed(store: Store) -> None:
    store.create_app("hello")
    build = store.create_build("hello", "abc")
    store.update_build(build.id, status="running")
    assert store.app_summary("hello").status == "deploying"
    assert store.fail_unfinished_builds() == 1
    assert store.get_build(build.id).status == "failed"
    assert store.app_summary("hello").status == "idle"
    assert store.fail_unfinished_builds() == 0
