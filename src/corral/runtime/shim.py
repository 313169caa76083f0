"""The shim that holds one dyno: it owns the dyno's output and outlives the platform.

``python -I -S .../corral/runtime/shim.py --log DIR --dyno web.1 --status FILE -- COMMAND...``
starts COMMAND in the shim's own process group (the manager starts the shim as a session
leader and signals the whole group), writes each output line stamped and tagged
(``2026-11-24T10:00:00.123456+00:00 app[web.1]: ...``) to ``DIR/web.1.log`` (rotated by
size), and on exit records the status in FILE. Because the shim, not the supervisor,
reads the pipe, the manager can die and be restarted without the dyno losing a line.
On SIGTERM or SIGINT the shim stays to collect the dyno's last lines and status; it
leaves when the dyno does.

One shim runs beside every dyno, so it is kept small: it imports nothing but a few
built-in modules (no corral module, no site-packages: ``-I -S``), forks and execs by
hand and watches the pipe and the OOM counter with ``select``, about 3 MB of memory of
its own instead of 10. That is why it repeats two facts that have their home elsewhere:
the log line's format (:func:`corral.logfiles.format_line`, held to it by
tests/test_shim.py) and a status as a shell reports it (:mod:`corral.exitcodes`).

With ``--cgroup-dir`` (one per tree: the supervisor made the dyno's group) the child
enters the group before it runs a line of the app's code, and the shim stops the whole
dyno when the kernel's OOM killer acts in it (``--oom-file`` counts those), removing the
group once everything in it is gone. With ``--user UID:GID`` the child runs as that user
while the shim stays the platform's.
"""

import os
import select
import signal
import sys
import time

#: Size at which the dyno's log is rotated to ``.1`` (``corral.logfiles.MAX_LOG_BYTES``).
MAX_LOG_BYTES = 5 * 1024 * 1024
#: ``prctl`` option: the signal a process gets when its parent dies.
_PR_SET_PDEATHSIG = 1
#: Seconds between looks at the OOM counter while the dyno is quiet, when the kernel cannot
#: tell the shim of an OOM kill, and when it can: a safety net for a kill before the shim
#: registered, or a notification that never came (seen once in a test run, cause unknown).
_OOM_POLL = 0.25
_OOM_SAFETY = 30.0


def _stamp() -> str:
    """Now as the log stamps it (``2026-11-24T10:00:00.123456+00:00``), without datetime's
    Python module (a megabyte per shim)."""
    now = time.time_ns() // 1000
    seconds, micros = divmod(now, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}+00:00"


class _Log:
    """The dyno's log file, appended to with one write per line and rotated by size."""

    def __init__(self, path: str, dyno: str) -> None:
        self.path, self.dyno = path, dyno
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def line(self, source: str, text: str) -> None:
        """Write one line now (the shim may be killed, and the line must not die with it)."""
        data = f"{_stamp()} {source}[{self.dyno}]: {text}\n".encode("utf-8", "replace")
        while data:
            data = data[os.write(self.fd, data) :]
        if os.fstat(self.fd).st_size >= MAX_LOG_BYTES:
            os.close(self.fd)
            os.replace(self.path, self.path + ".1")
            self.fd = self._open()


def _oom_kills(path: str | None) -> int:
    """The OOM killer's count in a ``memory.events`` (v2) or ``memory.oom_control`` (v1)."""
    if path is None:
        return 0
    try:
        with open(path) as handle:
            for line in handle:
                name, _, value = line.partition(" ")
                if name == "oom_kill" and value.strip().isdigit():
                    return int(value)
    except OSError:
        pass
    return 0


def _oom_events(path: str) -> tuple[int, int] | None:
    """A file descriptor that ``select`` reports when the kernel's OOM killer acts in the
    group of ``path``, and whether to watch it for reading (0) or as an exception (1);
    None where it cannot (then the shim polls). An idle dyno's shim then never wakes."""
    try:
        if path.endswith("memory.events"):  # v2: a change is a priority event on the file
            return os.open(path, os.O_RDONLY), 1
        # v1: an eventfd registered on memory.oom_control through cgroup.event_control
        event = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        try:
            control = os.open(path, os.O_RDONLY)
            try:  # the kernel keeps what it needs of the registration
                register = os.path.join(os.path.dirname(path), "cgroup.event_control")
                with open(register, "w") as handle:
                    handle.write(f"{event} {control}")
            finally:
                os.close(control)
        except OSError:
            os.close(event)
            raise
        return event, 0
    except (OSError, AttributeError):  # no eventfd before Python 3.10
        return None


def _rearm(fd: int) -> None:
    """Take the event, so that ``select`` waits for the next one."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        os.read(fd, 4096)
    except OSError:  # an eventfd: read, never sought
        try:  # noqa: SIM105 - contextlib is one import more for every dyno's shim
            os.read(fd, 8)
        except OSError:
            pass


def _group_pids(dirs: list[str]) -> set[int]:
    found: set[int] = set()
    for d in dirs:
        try:
            with open(os.path.join(d, "cgroup.procs")) as handle:
                found.update(int(p) for p in handle.read().split())
        except OSError:
            pass
    return found


def _end_group(dirs: list[str]) -> None:
    """SIGKILL what is left in the group (boundedly), then remove its directories."""
    _kill_group(dirs)
    for d in dirs:
        try:  # noqa: SIM105 - contextlib is one import more for every dyno's shim
            os.rmdir(d)
        except OSError:
            pass


def _kill_group(dirs: list[str]) -> None:
    """SIGKILL every process in the group until it is empty (boundedly)."""
    for _ in range(1000):
        pids = _group_pids(dirs)
        if not pids:
            break
        for pid in pids:
            try:  # noqa: SIM105 - contextlib is one import more for every dyno's shim
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        select.select([], [], [], 0.01)


def _child(
    argv: list[str], out: int, umask: int, dirs: list[str], user: str | None, parent: int
) -> None:
    """In the forked child: become the dyno and exec it (never returns)."""
    try:
        os.dup2(out, 1)
        os.dup2(out, 2)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.closerange(3, 65536)
        os.umask(umask)
        for d in dirs:  # as root, before the app's user: a user may not move itself
            fd = os.open(os.path.join(d, "cgroup.procs"), os.O_WRONLY)
            os.write(fd, b"0")
            os.close(fd)
        libc = None
        if sys.platform.startswith("linux"):
            # here, not in the shim: the child is about to exec anyway; and before the change
            # of user, who may not read the platform's Python
            import ctypes

            libc = ctypes.CDLL(None)
        if user:
            uid, _, gid = user.partition(":")
            os.setgroups([])
            os.setgid(int(gid))
            os.setuid(int(uid))
        if libc is not None:
            # after the change of user, which clears it: SIGTERM when the shim dies
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != parent:  # the shim died before the prctl took hold
                os._exit(1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.execvp(argv[0], argv)
    except BaseException as error:
        os.write(2, f"{argv[0]}: {error}\n".encode())
    os._exit(127)


def _write_status(template: str, status: int, oom_killed: bool) -> None:
    path = template.replace("{pid}", str(os.getpid()))
    record = f'{{"status": {status}, "at": "{_stamp()}", "oom_killed": {str(oom_killed).lower()}}}'
    temporary = f"{path}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, record.encode())
    finally:
        os.close(fd)
    os.replace(temporary, path)


def run(
    argv: list[str],
    log: _Log,
    status_file: str,
    *,
    umask: int = 0o022,
    user: str | None = None,
    dirs: list[str] = [],  # noqa: B006 - never mutated
    oom_file: str | None = None,
    memory: int = 0,
) -> int:
    """Run ``argv`` as the dyno; return its exit status (128+N when killed by signal N)."""
    read_end, write_end = os.pipe()
    # The group signal reaches the dyno too; the shim outlives it to record how it ended.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    parent = os.getpid()
    child = os.fork()
    if child == 0:
        os.close(read_end)
        _child(argv, write_end, umask, dirs, user, parent)
    os.close(write_end)
    said, pending = False, b""
    events = _oom_events(oom_file) if oom_file else None
    readable, priority = [read_end], list[int]()
    if events is not None:
        (priority if events[1] else readable).append(events[0])
    poll = None if not oom_file else _OOM_POLL if events is None else _OOM_SAFETY
    while True:
        try:
            ready, _, exceptional = select.select(readable, [], priority, poll)
        except InterruptedError:
            continue
        if events is not None and (events[0] in ready or exceptional):
            _rearm(events[0])
        if read_end in ready:
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                log.line("app", raw.rstrip(b"\r").decode("utf-8", "replace"))
        if oom_file and not said and _oom_kills(oom_file):
            # The kernel kills one process at the limit (a gunicorn worker, which the master
            # would just replace); Heroku's R15 stops the whole dyno, and so does this.
            said = True
            _r15(log, memory)
            _kill_group(dirs)  # the group stays until the end: its counters are read then
    if pending:
        log.line("app", pending.decode("utf-8", "replace"))
    os.close(read_end)
    while True:
        try:
            _, code = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    oom_killed = said or (bool(oom_file) and _oom_kills(oom_file) > 0)
    if oom_killed and not said:  # one process, killed before the shim looked
        _r15(log, memory)
    if dirs:
        _end_group(dirs)  # what the dyno left running dies with it
    if os.WIFSIGNALED(code):
        signum = os.WTERMSIG(code)
        status, how = 128 + signum, f"signal {signum}"
    else:
        status = os.WEXITSTATUS(code)
        how = f"status {status}"
    log.line("corral", f"Process exited with {how}")
    _write_status(status_file, status, oom_killed)
    return status


def _r15(log: _Log, memory: int) -> None:
    log.line(
        "corral",
        "Error R15 (Memory quota vastly exceeded): the kernel stopped the dyno "
        f"at its limit of {memory >> 20}M",
    )


_USAGE = (
    "usage: shim.py --log DIR --dyno NAME --status FILE [--umask 022] [--user UID:GID] "
    "[--cgroup-dir DIR]... [--oom-file FILE] [--memory BYTES] -- COMMAND..."
)


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse the arguments (by hand: argparse alone costs more than the rest)."""
    args = sys.argv[1:] if argv is None else argv
    options: dict[str, list[str]] = {}
    while args and args[0] != "--":
        if len(args) < 2 or not args[0].startswith("--"):
            sys.stderr.write(_USAGE + "\n")
            return 2
        options.setdefault(args[0][2:], []).append(args[1])
        args = args[2:]
    command = args[1:]
    if not command or not {"log", "dyno", "status"} <= options.keys():
        sys.stderr.write(_USAGE + "\n")
        return 2
    dyno = options["dyno"][-1]
    log = _Log(os.path.join(options["log"][-1], f"{dyno}.log"), dyno)
    try:
        return run(
            command,
            log,
            options["status"][-1],
            umask=int(options.get("umask", ["022"])[-1], 8),
            user=options.get("user", [None])[-1],
            dirs=options.get("cgroup-dir", []),
            oom_file=options.get("oom-file", [None])[-1],
            memory=int(options.get("memory", ["0"])[-1]),
        )
    finally:
        os.close(log.fd)


if __name__ == "__main__":
    sys.exit(main())
