"""Kernel limits for dynos: one cgroup per dyno, on cgroup v2 hosts and on cgroup v1 hosts.

Each dyno's processes live in a group of their own, ``<base>/<app>/<dyno>.<shim pid>``, with
a hard memory limit (the app's ``ps:memory`` quota, no swap on top), a pids limit (a fork
bomb stays inside) and, on the app's group, a CPU weight. The kernel enforces all three:
past the memory limit its OOM killer acts inside the group only, and the group's counters
say so afterwards. The shim creates the group, puts the dyno in it before it runs any of
the app's code, and removes it once every process in it is gone, so a replacement never
starts while an old copy still holds memory.

On v2 (one unified tree) a group is one directory; controllers must be enabled in each
ancestor's ``cgroup.subtree_control``. On v1 each controller (memory, pids, cpu) has its
own tree, and a group is one directory in each.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CGROUP_ROOT", "Group", "Hierarchy", "Limits", "base_for_home", "detect"]

#: Where Linux mounts cgroups.
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: The v1 controllers corral uses, each its own tree.
_V1_CONTROLLERS = ("memory", "pids", "cpu")


@dataclass(frozen=True)
class Limits:
    """What one dyno may use."""

    memory: int  #: bytes, no swap on top
    pids: int = 512  #: processes and threads
    cpu_weight: int = 100  #: relative share of the CPU, 1 to 10000 (v2's scale)


def base_for_home(home: Path) -> str:
    """The group all of one platform's dynos live under (several homes may share a host)."""
    digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:12]
    return f"corral/{digest}"


def _write(path: Path, value: str) -> None:
    # cgroup files take one write each; a partial or buffered write would be refused
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _counter(text: str, key: str) -> int:
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0


class Group:
    """One dyno's cgroup: a directory per tree (one on v2, one per controller on v1)."""

    def __init__(self, version: int, dirs: tuple[Path, ...]) -> None:
        self.version = version
        self.dirs = dirs

    def exists(self) -> bool:
        """Whether the group is still there."""
        return any(d.is_dir() for d in self.dirs)

    def add(self, pid: int) -> None:
        """Move ``pid`` (and, from then on, everything it starts) into the group."""
        for d in self.dirs:
            _write(d / "cgroup.procs", str(pid))

    def pids(self) -> list[int]:
        """The processes in the group now."""
        found: set[int] = set()
        for d in self.dirs:
            found.update(int(p) for p in _read(d / "cgroup.procs").split())
        return sorted(found)

    def memory(self) -> int:
        """Bytes of memory the group is charged for now."""
        name = "memory.current" if self.version == 2 else "memory.usage_in_bytes"
        text = _read(self._memory_dir / name).strip()
        return int(text) if text.isdigit() else 0

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer has killed in the group."""
        return _counter(_read(self.oom_file), "oom_kill")

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL every process in the group until it is empty (bounded by ``timeout``)."""
        kill_file = self.dirs[0] / "cgroup.kill"
        if self.version == 2 and kill_file.exists():
            _write(kill_file, "1")
        deadline = time.monotonic() + timeout
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def remove(self) -> None:
        """Remove the group's directories (it must be empty)."""
        for d in self.dirs:
            with contextlib.suppress(FileNotFoundError):
                d.rmdir()

    @property
    def _memory_dir(self) -> Path:
        return self.dirs[0]

    @property
    def oom_file(self) -> Path:
        """The file whose ``oom_kill`` line counts the OOM killer's kills in the group."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        return self._memory_dir / name


class Hierarchy:
    """The host's cgroup trees, as corral uses them."""

    def __init__(self, version: int, root: Path) -> None:
        self.version = version
        self.root = root

    def _dirs(self, path: str) -> tuple[Path, ...]:
        if self.version == 2:
            return (self.root / path,)
        return tuple(self.root / controller / path for controller in _V1_CONTROLLERS)

    def group(self, path: str) -> Group:
        """The group at ``path`` (relative to the trees' roots), whether it exists or not."""
        return Group(self.version, self._dirs(path))

    def remove_empty(self, path: str) -> None:
        """Remove ``path`` and the groups below it that hold no process (the rest stay)."""
        for top in self._dirs(path):
            if not top.is_dir():
                continue
            below = sorted((d for d in top.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts))
            for d in [*below, top]:
                with contextlib.suppress(OSError):
                    d.rmdir()

    def prepare(self, path: str, cpu_weight: int | None = None) -> None:
        """Create ``path`` and its ancestors as parents of groups with limits; set the CPU
        weight of ``path`` (an app's group) when given."""
        parts = Path(path).parts
        for depth in range(1, len(parts) + 1):
            for d in self._dirs(str(Path(*parts[:depth]))):
                d.mkdir(exist_ok=True)
        if self.version == 2:
            # controllers reach a group only when every ancestor hands them down
            chain = [self.root, *(self.root / Path(*parts[:i]) for i in range(1, len(parts) + 1))]
            for d in chain:
                _write(d / "cgroup.subtree_control", "+memory +pids +cpu")
        if cpu_weight is not None:
            if self.version == 2:
                _write(self.root / path / "cpu.weight", str(cpu_weight))
            else:  # v1 shares: 1024 is the default weight of 100
                _write(
                    self.root / "cpu" / path / "cpu.shares", str(max(2, cpu_weight * 1024 // 100))
                )

    def create(self, path: str, limits: Limits) -> Group:
        """Create the group at ``path`` (its parent prepared) with ``limits``."""
        group = self.group(path)
        for d in group.dirs:
            d.mkdir()
        try:
            self._limit(group, limits)
        except OSError:
            group.remove()
            raise
        return group

    def _limit(self, group: Group, limits: Limits) -> None:
        if self.version == 2:
            d = group.dirs[0]
            _write(d / "memory.max", str(limits.memory))
            if (d / "memory.swap.max").exists():
                _write(d / "memory.swap.max", "0")
            _write(d / "pids.max", str(limits.pids))
            if (d / "memory.oom.group").exists():
                _write(d / "memory.oom.group", "1")  # an OOM kill takes the whole dyno
            return
        memory, pids, _cpu = group.dirs
        _write(memory / "memory.limit_in_bytes", str(limits.memory))
        if (memory / "memory.memsw.limit_in_bytes").exists():
            # memory + swap: no swap on top of the limit (set after, it may not be lower)
            _write(memory / "memory.memsw.limit_in_bytes", str(limits.memory))
        _write(pids / "pids.max", str(limits.pids))


def detect(root: Path = CGROUP_ROOT) -> tuple[Hierarchy | None, str]:
    """The host's cgroups as corral can use them, or None and one sentence saying why not."""
    controllers = _read(root / "cgroup.controllers").split()
    if controllers:
        missing = [c for c in ("memory", "pids", "cpu") if c not in controllers]
        if missing:
            return None, f"cgroup v2 lacks the {', '.join(missing)} controller(s)"
        return _writable(Hierarchy(2, root), root)
    missing = [c for c in _V1_CONTROLLERS if not (root / c / "cgroup.procs").exists()]
    if len(missing) == len(_V1_CONTROLLERS):
        return None, f"no cgroup v2 or v1 hierarchy is mounted at {root}"
    if missing:
        return None, f"cgroup v1 lacks the {', '.join(missing)} controller(s) at {root}"
    return _writable(Hierarchy(1, root), root / "memory")


def _writable(hierarchy: Hierarchy, where: Path) -> tuple[Hierarchy | None, str]:
    if os.access(where, os.W_OK):
        return hierarchy, f"cgroup v{hierarchy.version}"
    return None, f"{where} is not writable (run corral server as root)"
