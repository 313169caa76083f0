"""Issue 17's router targets, judged from one run of ``bench/router.py``: met or not met.

Pure functions of the runs' summaries (lists of ``{"rps", "p50_ms", "p99_ms", ...}`` per
side), so the verdicts are the medians the bench prints, never a figure of their own.
"""

from __future__ import annotations

import statistics

#: Embedded throughput at saturation, as a share of nginx's in the same run.
THROUGHPUT_RATIO = 0.85
#: Latency the embedded router may add over nginx at p99, at half of direct saturation.
P99_OVER_NGINX_MS = 1.0
#: At the overload rate, the embedded router must answer this share of what nginx answers...
OVERLOAD_RATE_SHARE = 0.95
#: ...with a p50 of at most this many times nginx's, plus ``OVERLOAD_P50_SLACK_MS``.
OVERLOAD_P50_FACTOR = 2.0
OVERLOAD_P50_SLACK_MS = 1.0
#: nginx sustains a rate if its p50 stays below this; past it the rate judges nothing.
SUSTAINED_P50_MS = 25.0

Runs = dict[str, list[dict]]


def _median(runs: Runs, side: str, key: str) -> float:
    return statistics.median(run[key] for run in runs[side])


def _verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def verdicts(saturation: Runs, paced: Runs, overload: Runs | None, side: str) -> list[str]:
    """One line per target for router ``side`` against nginx; empty without an nginx side."""
    if "nginx" not in saturation or side not in saturation:
        return []
    ratio = _median(saturation, side, "rps") / _median(saturation, "nginx", "rps")
    lines = [
        f"throughput {side}/nginx {ratio:.2f} (target >= {THROUGHPUT_RATIO}):"
        f" {_verdict(ratio >= THROUGHPUT_RATIO)}"
    ]
    over = _median(paced, side, "p99_ms") - _median(paced, "nginx", "p99_ms")
    lines.append(
        f"p99 added over nginx at the paced rate {over:+.2f} ms (target <= +{P99_OVER_NGINX_MS:g}"
        f" ms): {_verdict(over <= P99_OVER_NGINX_MS)}"
    )
    if overload is not None and side in overload and "nginx" in overload:
        lines.append(collapse_verdict(overload, side))
    return lines


def collapse_verdict(overload: Runs, side: str) -> str:
    """No collapse: at a rate nginx answers, ``side`` answers (nearly) as much, as fast."""
    rate, nginx_rate = _median(overload, side, "rps"), _median(overload, "nginx", "rps")
    p50, nginx_p50 = _median(overload, side, "p50_ms"), _median(overload, "nginx", "p50_ms")
    unanswered = max(run.get("unanswered", 0) for run in overload[side])
    bound = OVERLOAD_P50_FACTOR * nginx_p50 + OVERLOAD_P50_SLACK_MS
    met = rate >= OVERLOAD_RATE_SHARE * nginx_rate and p50 <= bound and not unanswered
    figures = (
        f"{side} {rate:.0f} req/s p50 {p50:.2f} ms"
        f"{f', {unanswered} unanswered' if unanswered else ''}, nginx {nginx_rate:.0f} req/s"
        f" p50 {nginx_p50:.2f} ms"
    )
    if nginx_p50 > SUSTAINED_P50_MS:
        return (
            f"no collapse at the overload rate: {figures}; nginx did not sustain that rate"
            f" either (p50 > {SUSTAINED_P50_MS:g} ms): NOT JUDGED, lower --overload-load"
        )
    return (
        f"no collapse at the overload rate: {figures} (target >= {OVERLOAD_RATE_SHARE:.0%} of"
        f" nginx's rate, p50 <= {bound:.2f} ms): {_verdict(met)}"
    )
