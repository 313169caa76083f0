"""The restart policy, with plain values."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from corral.runtime.restart import RestartPolicy

POLICY = RestartPolicy(first_delay=1, factor=2, cap=60, reset_after=30)


def test_first_crash_restarts_at_once_then_delays_grow() -> None:
    assert [POLICY.delay(n) for n in range(1, 6)] == [0, 1, 2, 4, 8]


def test_delay_never_exceeds_the_cap() -> None:
    assert POLICY.delay(50) == 60


def test_staying_up_resets_the_crash_count() -> None:
    assert POLICY.crashes_after(previous_crashes=7, uptime=31) == 1
    assert POLICY.crashes_after(previous_crashes=7, uptime=2) == 8


@given(st.integers(min_value=1, max_value=200))
def test_delays_are_monotonic_and_bounded(crashes: int) -> None:
    assert 0 <= POLICY.delay(crashes) <= POLICY.delay(crashes + 1) <= POLICY.cap
