"""The supervisor's pure decisions, with plain values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.runtime.plan import (
    DEFAULT_SETTLE,
    due_for_restart,
    excerpt,
    memory_verdict,
    needs_rollout,
    process_type,
    settle_time,
    settled,
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


def test_the_release_phase_is_never_a_dyno() -> None:
    assert wanted_dynos(["web", "release"], {"web": 1, "release": 1}, first_deploy=False) == [
        "web.1"
    ]


def test_settle_time_is_app_jsons_number_of_seconds_or_the_default() -> None:
    assert settle_time(None) == DEFAULT_SETTLE == 3
    assert settle_time(0) == 0 and settle_time(2.5) == 2.5 and settle_time(300) == 300
    assert settled(3.0, 3.0) and not settled(2.9, 3.0)


@pytest.mark.parametrize("bad", ["3", -1, 301, True, [3], {"s": 3}])
def test_a_settle_time_that_is_not_seconds_says_what_to_write(bad: object) -> None:
    with pytest.raises(ValueError, match=r"healthcheck.settle is .*; give a number of seconds"):
        settle_time(bad)


def test_excerpt_is_the_last_lines_keeping_the_exception_shutdown_lines_push_out() -> None:
    assert excerpt(["a", "b"], str) == ["a", "b"]
    assert excerpt([str(i) for i in range(20)], str, limit=5) == ["15", "16", "17", "18", "19"]
    traceback = ["Traceback (most recent call last):", '  File "app.py"', "KeyError: 'DB'"]
    shutdown = [f"[INFO] shutting down {i}" for i in range(8)]
    assert excerpt([*traceback, *shutdown], str, limit=5, tail=2) == [
        *traceback,
        *shutdown[-2:],
    ]
    assert excerpt([*traceback, *shutdown], str, limit=4, tail=2)[:2] == traceback[1:]
    dotted = ["x", "django.core.exceptions.ImproperlyConfigured: no", "y"]
    assert excerpt(dotted, str, limit=2) == dotted[-2:]  # not an ...Error name: the last lines


@given(st.lists(st.sampled_from(["ok", "ValueError: x", "  frame"]), max_size=40))
def test_an_excerpt_is_never_longer_than_its_limit_and_keeps_order(lines: list[str]) -> None:
    chosen = excerpt(lines, str, limit=6, tail=2)
    assert len(chosen) <= 6 and len(chosen) == min(len(lines), 6)
    if any(line.startswith("ValueError") for line in lines):
        assert "ValueError: x" in chosen
