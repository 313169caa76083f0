"""Scheduled backups: ``pg:backups:schedule --at HH:MM --keep N``, and the service that
takes them.

A schedule is ``addons/<addon>/schedule.json`` (``at``, UTC; ``keep``; the ids it took;
when it last ran), root-only. While any schedule exists, the platform runs
``python -m corral.addons.schedule`` as its ``backups`` service: every
:data:`INTERVAL` seconds it takes the backups that are due (once a day at ``at``; one
missed while the platform was down is taken at the next start) and removes those it
took beyond the last ``keep`` (backups taken by hand are never removed by it).
"""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta

from corral.addons import backups
from corral.addons.cluster import Cluster
from corral.config import Settings
from corral.errors import UserError
from corral.files import atomic_write

__all__ = ["INTERVAL", "Schedule", "due", "load", "remove", "save", "scheduled", "take_due"]

#: Seconds between two looks at the schedules.
INTERVAL = 10.0
_AT = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_FILE = "schedule.json"


@dataclass(frozen=True)
class Schedule:
    """When to back an add-on up each day, how many of these backups to keep."""

    at: str
    keep: int
    taken: list[str] = field(default_factory=list)
    last: float | None = None

    def __post_init__(self) -> None:
        if not _AT.fullmatch(self.at):
            raise UserError(f"--at {self.at} is not a time; give HH:MM in UTC, such as 02:30.")
        if not 1 <= self.keep <= 1000:
            raise UserError(f"--keep {self.keep} is out of range; keep 1 to 1000 backups.")


def due(at: str, last: float | None, now: float) -> bool:
    """Whether a backup scheduled daily at ``at`` (UTC) is due at ``now``, the last one
    having been taken at ``last`` (None: never)."""
    hours, minutes = (int(part) for part in at.split(":"))
    today = datetime.fromtimestamp(now, UTC).replace(
        hour=hours, minute=minutes, second=0, microsecond=0
    )
    slot = today if today.timestamp() <= now else today - timedelta(days=1)
    return last is None or last < slot.timestamp()


def load(settings: Settings, addon: str) -> Schedule | None:
    """The add-on's schedule, if it has one."""
    path = settings.addons_dir / addon / _FILE
    if not path.exists():
        return None
    return Schedule(**json.loads(path.read_text()))


def save(settings: Settings, addon: str, schedule: Schedule) -> None:
    """Record the add-on's schedule (its past backups' ids and last run carried over)."""
    directory = settings.addons_dir / addon
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(directory / _FILE, json.dumps(asdict(schedule)) + "\n", mode=0o600)


def remove(settings: Settings, addon: str) -> bool:
    """Stop backing the add-on up on a schedule; False if it had none."""
    path = settings.addons_dir / addon / _FILE
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed


def scheduled(settings: Settings) -> list[str]:
    """The add-ons that have a schedule."""
    root = settings.addons_dir
    return sorted(p.parent.name for p in root.glob(f"*/{_FILE}")) if root.is_dir() else []


def take_due(settings: Settings, now: float, say=print) -> list[str]:  # type: ignore[no-untyped-def]
    """Take every backup due at ``now``, prune past each schedule's ``keep``; the ids taken."""
    taken = []
    for addon in scheduled(settings):
        schedule = load(settings, addon)
        if schedule is None or not due(schedule.at, schedule.last, now):
            continue
        try:
            backup = backups.capture(settings, Cluster(settings), addon)
        except UserError as error:  # said, and tried again at the next look
            say(f"{addon}: {error}")
            continue
        kept = [*schedule.taken, backup.id]
        for old in kept[: -schedule.keep]:
            (settings.addons_dir / addon / "backups" / f"{old}.dump").unlink(missing_ok=True)
        save(settings, addon, replace(schedule, taken=kept[-schedule.keep :], last=now))
        say(f"{addon}: scheduled backup {backup.id} taken ({backup.size} bytes)")
        taken.append(backup.id)
    return taken


def main() -> None:
    """``python -m corral.addons.schedule``: take scheduled backups until SIGTERM (the home
    comes in the environment, read by :meth:`Settings.load`)."""
    settings = Settings.load()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    say(f"scheduled backups of {settings.home}, looked at every {INTERVAL:g}s")
    while not stop.is_set():
        take_due(settings, datetime.now(UTC).timestamp(), say)
        stop.wait(INTERVAL)


if __name__ == "__main__":
    main()
