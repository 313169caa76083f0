"""The supervisor's pure decisions, with plain values."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from corral.runtime.plan import (
    due_for_restart,
    memory_verdict,
    needs_rollout,
    process_type,
    wanted_dynos,
    web_concurrency,
)

MB = 1024 * 1024


def test_wanted_dynos_follow_the_formation_in_procfile_order() -> None:
    wanted = wanted_dynos(["web", "worker", "clock"], {"worker": 2, "web": 1}, first_deploy=False)
    assert wanted == ["web.1", "worker.1", "worker.2"]


def test_a_first_deploy_starts_one_web_dyno_unscaled() -> None:
    assert wanted_dynos(["web", "worker"], {}, first_deploy=True) == ["web.1"]
    assert wanted_dynos(["web"], {"web": 0}, first_deploy=True) == []  # scaled to 0 on purpose
    assert wanted_dynos(["worker"], {}, first_deploy=True) == []


def test_release_is_a_phase_never_a_dyno() -> None:
    assert wanted_dynos(["web", "release"], {"web": 1, "release": 3}, first_deploy=True) == [
        "web.1"
    ]


@given(st.dictionaries(st.sampled_from(["web", "worker", "release"]), st.integers(0, 5)))
def test_wanted_dynos_count_what_was_asked(quantities: dict[str, int]) -> None:
    wanted = wanted_dynos(["web", "worker", "release"], quantities, first_deploy=False)
    for kind in ("web", "worker"):
        assert sum(process_type(name) == kind for name in wanted) == quantities.get(kind, 0)
    assert not any(name.startswith("release.") for name in wanted)


def test_an_app_behind_its_release_or_pending_rolls_out() -> None:
    assert needs_rollout(
        target_version=3, target_pending=True, running_versions=[], failed_version=None
    )
    assert needs_rollout(
        target_version=3, target_pending=False, running_versions=[3, 2], failed_version=None
    )
    assert not needs_rollout(
        target_version=3, target_pending=False, running_versions=[3, 3], failed_version=None
    )


def test_a_failed_release_is_not_retried_until_a_newer_one() -> None:
    assert not needs_rollout(
        target_version=3, target_pending=True, running_versions=[2], failed_version=3
    )
    assert needs_rollout(
        target_version=4, target_pending=True, running_versions=[2], failed_version=3
    )


def test_restart_is_due_once_the_delay_passed() -> None:
    assert due_for_restart(None, now=100.0)
    assert due_for_restart(100.0, now=100.0)
    assert not due_for_restart(100.5, now=100.0)


def test_memory_warns_past_the_quota_once_and_restarts_past_twice() -> None:
    assert memory_verdict(100 * MB, 100 * MB, warned=False) == "ok"
    assert memory_verdict(101 * MB, 100 * MB, warned=False) == "warn"
    assert memory_verdict(150 * MB, 100 * MB, warned=True) == "ok"
    assert memory_verdict(201 * MB, 100 * MB, warned=True) == "restart"


def test_web_concurrency_is_one_worker_per_256_mb_capped_by_cores() -> None:
    assert web_concurrency(512 * MB, cpus=2) == 2
    assert web_concurrency(100 * MB, cpus=2) == 1
    assert web_concurrency(8192 * MB, cpus=2) == 4
