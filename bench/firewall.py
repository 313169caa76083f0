"""Firewall benchmark: what one sync of the network-isolation rules costs (run as root).

Run: ``.venv/bin/python bench/firewall.py [--runs 20] [--ports 10,100,1000]``. For each
backend this host has (nftables; iptables as if nft were missing) and each count of dyno
ports, it syncs ``--runs`` times, alternating two owner maps so every sync really changes
the rules, and prints the median and the slowest wall time of one sync (the supervisor
makes one on every route-table change, i.e. every deploy and every dyno start or stop).
Rules live in a table of a temporary home and are removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from corral.config import Settings
from corral.runtime.firewall import TOOL_PATH, Iptables, Nftables, detect


def _owners(count: int, shift: int) -> dict[int, int]:
    # ports 20000 up, owned by ten apps in turn; `shift` moves each port to the next app
    return {20000 + i: 40000 + (i + shift) % 10 for i in range(count)}


def _time(backend: Nftables | Iptables, count: int, runs: int) -> list[float]:
    took = []
    for run in range(runs):
        owners = _owners(count, run % 2)
        began = time.perf_counter()
        backend.sync(owners)
        took.append(time.perf_counter() - began)
    return took


def _backends(home: Path) -> list[Nftables | Iptables]:
    found: list[Nftables | Iptables] = []
    nft, note = detect(Settings(home=home / "nft"))
    if isinstance(nft, Nftables):
        found.append(nft)
    else:
        print(f"nftables: {note}")
    only = home / "sbin"  # iptables as where nft is missing
    only.mkdir()
    for name in ("iptables", "iptables-restore", "ip6tables", "ip6tables-restore"):
        if path := shutil.which(name, path=TOOL_PATH):
            (only / name).symlink_to(path)
    ipt, note = detect(Settings(home=home / "ipt"), search_path=str(only))
    if isinstance(ipt, Iptables):
        found.append(ipt)
    else:
        print(f"iptables: {note}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--ports", default="10,100,1000")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/firewall.py changes the kernel's rules: run it as root.", file=sys.stderr)
        return 1
    counts = [int(word) for word in args.ports.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        for backend in _backends(Path(tmp)):
            try:
                for count in counts:
                    took = _time(backend, count, args.runs)
                    print(
                        f"{backend.description}: {count:5d} ports, one sync "
                        f"median {statistics.median(took) * 1000:6.1f} ms, "
                        f"slowest {max(took) * 1000:6.1f} ms ({args.runs} runs)"
                    )
            finally:
                backend.clear()
    return 0


if __name__ == "__main__":
    sys.exit(main())
