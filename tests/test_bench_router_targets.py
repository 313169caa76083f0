"""bench/router_targets.py: the router bench's verdicts follow the medians it prints."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parent.parent / "bench" / "router_targets.py"
_SPEC = importlib.util.spec_from_file_location("router_targets", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
targets = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(targets)


def _runs(*figures: tuple[float, float, float]) -> list[dict]:
    return [{"rps": r, "p50_ms": p50, "p99_ms": p99} for r, p50, p99 in figures]


def test_targets_are_met_on_the_medians_not_the_best_run() -> None:
    saturation = {
        "nginx": _runs((1000, 10, 20), (1000, 10, 20), (1000, 10, 20)),
        # one lucky run above nginx, a median of 0.80: not met
        "embedded": _runs((1200, 9, 18), (800, 12, 25), (790, 12, 25)),
    }
    paced = {"nginx": _runs((500, 1, 5)) * 3, "embedded": _runs((500, 1.2, 5.5)) * 3}
    lines = targets.verdicts(saturation, paced, None, "embedded")
    assert lines[0] == "throughput embedded/nginx 0.80 (target >= 0.85): NOT MET"
    assert lines[1].startswith("p99 added over nginx at the paced rate +0.50 ms")
    assert lines[1].endswith(": met")
    assert len(lines) == 2  # no overload phase, no collapse verdict


def test_a_router_that_falls_behind_at_the_overload_rate_collapses() -> None:
    nginx = _runs((2000, 1.1, 4), (2000, 1.2, 4), (2000, 1.0, 4))
    holding = {"nginx": nginx, "embedded": _runs((1990, 1.5, 6)) * 3}
    assert targets.collapse_verdict(holding, "embedded").endswith(": met")
    collapsed = {"nginx": nginx, "embedded": _runs((1200, 318, 900)) * 3}
    assert targets.collapse_verdict(collapsed, "embedded").endswith(": NOT MET")
    behind = [{**run, "unanswered": 5} for run in _runs((1990, 1.5, 6)) * 3]
    assert "5 unanswered" in targets.collapse_verdict(
        {"nginx": nginx, "embedded": behind}, "embedded"
    )
    assert targets.collapse_verdict({"nginx": nginx, "embedded": behind}, "embedded").endswith(
        "NOT MET"
    )


def test_a_rate_nginx_does_not_sustain_judges_nothing() -> None:
    overloaded = {"nginx": _runs((1800, 300, 900)) * 3, "embedded": _runs((1800, 900, 2000)) * 3}
    assert targets.collapse_verdict(overloaded, "embedded").endswith(
        "NOT JUDGED, lower --overload-load"
    )


def test_no_verdicts_without_nginx_in_the_run() -> None:
    saturation = {"embedded": _runs((1000, 10, 20))}
    assert targets.verdicts(saturation, saturation, None, "embedded") == []
