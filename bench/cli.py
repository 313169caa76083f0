"""CLI start-up benchmark: how long ``corral --version``, ``corral apps`` and ``corral ps``
take, against ``python -c pass`` on the same interpreter, in the same run.

Run: ``.venv/bin/python bench/cli.py [--runs 10] [--before SRC]``. It starts a real
``corral server`` on a free loopback port in a temporary home (as bench/deploy.py does, with
``--no-isolation``), deploys one Flask + gunicorn app with ``git push`` (so ``ps`` lists a
dyno), then times each command as a user runs it: the ``corral`` console script of this
environment, output into a pipe, with .pyc files (``$PYTHONDONTWRITEBYTECODE`` is dropped
and an untimed first run writes them, as ``pip install`` does). The commands take turns in
each round, so a busy machine slows all alike; figures are medians of ``--runs`` rounds,
each also given as a ratio to ``python -c pass`` (targets: ``--version`` <= 40 ms and
``apps`` <= 80 ms where ``pass`` takes 10 ms, so ratios 4 and 8). The CPU time of each
(user + system, medians) is printed beside it: on a shared machine it moves less than
the wall clock does. With ``curl`` installed, the request ``corral apps`` makes is timed from
curl too: the server's share of the figure.

``--before SRC`` times the same commands from another source tree too (``src`` of a
``git archive`` of an older commit, say), run by the same interpreter and environment
through a copy of the console script, so before and after come from one run.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deploy import Bench

#: What pip writes as the ``corral`` console script, run with ``--before``'s tree first.
WRAPPER = """import re
import sys
from corral.cli import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _time(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system) of one run of ``argv``."""
    cpu, started = _cpu(), time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode(errors='replace')}")
    return elapsed, _cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--before", type=Path, help="another corral source tree to time too")
    args = parser.parse_args()
    script = shutil.which("corral", path=str(Path(sys.executable).parent))
    if script is None:
        raise SystemExit("no corral console script beside this Python; pip install -e . first")
    with tempfile.TemporaryDirectory(prefix="corral-bench-cli-") as tmp:
        bench = Bench(Path(tmp), "--no-isolation")
        try:
            bench.push_until_served(bench.new_app("hello"), "hello")
            env = {
                key: value
                for key, value in os.environ.items()
                if not key.startswith("CORRAL_")
                # colour settings would make it a terminal; without .pyc files every run
                # would compile corral's source, which an installed corral never does
                and key not in ("FORCE_COLOR", "TTY_COMPATIBLE", "PYTHONDONTWRITEBYTECODE")
            }
            env |= {"CORRAL_SERVER": f"http://localhost:{bench.port}", "CORRAL_TOKEN": bench.token}
            commands = {"--version": ["--version"], "apps": ["apps"], "ps": ["ps", "-a", "hello"]}
            sides: dict[str, tuple[list[str], dict[str, str]]] = {
                "python -c pass": ([sys.executable, "-c", "pass"], env)
            }
            for name, argv in commands.items():
                sides[f"corral {name}"] = ([script, *argv], env)
            curl = shutil.which("curl")
            if curl:  # the server's own share of `corral apps`: the same request, from C
                header = Path(tmp) / "authorization"  # not on a command line others can read
                header.write_text(f"Authorization: Bearer {bench.token}\n")
                header.chmod(0o600)
                url = f"http://localhost:{bench.port}/api/v1/apps"
                sides["curl /api/v1/apps"] = (
                    [curl, "-sfo", "/dev/null", "-H", f"@{header}", url],
                    env,
                )
            if args.before:
                wrapper = Path(tmp) / "corral-before"
                wrapper.write_text(WRAPPER)
                before = env | {"PYTHONPATH": str(args.before.resolve())}
                for name, argv in commands.items():
                    sides[f"before: corral {name}"] = (
                        [sys.executable, str(wrapper), *argv],
                        before,
                    )
            for argv, side_env in sides.values():  # warm the page cache and .pyc files
                _time(argv, side_env)
            times: dict[str, list[float]] = {name: [] for name in sides}
            cpu: dict[str, list[float]] = {name: [] for name in sides}
            for _ in range(args.runs):
                for name, (argv, side_env) in sides.items():
                    wall, used = _time(argv, side_env)
                    times[name].append(wall)
                    cpu[name].append(used)
        finally:
            bench.close()
    floor = statistics.median(times["python -c pass"])
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"corral CLI start-up, medians of {args.runs} rounds (load average {load})")
    floor_cpu = statistics.median(cpu["python -c pass"])
    for name, values in times.items():
        median, used = statistics.median(values), statistics.median(cpu[name])
        print(
            f"  {name:<28} {median * 1000:6.1f} ms   x{median / floor:4.1f} of python -c pass"
            f"   (range {min(values) * 1000:.0f}-{max(values) * 1000:.0f});"
            f"   CPU {used * 1000:5.1f} ms, x{used / floor_cpu:4.1f}"
        )
    if args.before:
        for name in commands:
            now, then = (
                statistics.median(times[f"{side}corral {name}"]) for side in ("", "before: ")
            )
            print(f"  corral {name:<21} now/before {now / then:.2f}")


if __name__ == "__main__":
    main()
