"""The process manager: runs a set of processes together and stops them together.

Reader threads and signal handlers only put events on one queue; the loop in
:meth:`Manager.run` is the single owner that prints lines, notices exits and sends
signals (the shape of gunicorn's arbiter and honcho's manager). When any process exits,
or SIGINT/SIGTERM/SIGHUP arrives, every process group gets SIGTERM, then SIGKILL once
the grace period is over, and the loop ends when nothing is left running.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

from corral.exitcodes import shell_status, signal_status
from corral.local.printer import Printer
from corral.local.process import Line, OutputClosed, Process, ProcessSpec, describe_exit

__all__ = ["DEFAULT_GRACE", "HANDLED_SIGNALS", "Manager", "StopRequested"]

#: Seconds between SIGTERM and SIGKILL when stopping.
DEFAULT_GRACE = 10.0
#: Signals that stop every process; the exit code is ``128 + signum``, as in a shell.
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: How often the loop looks for exited processes when no event arrives.
_TICK = 0.05
#: Events handled in a row before looking for exits again, so a chatty process cannot
#: hide another one's exit.
_BATCH = 256
#: How long an exited process's output may stay open (held by something it started)
#: before its exit is reported anyway.
_DRAIN = 1.0
#: How long to wait for processes after SIGKILL before giving up on them.
_KILL_WAIT = 5.0


@dataclass(frozen=True)
class StopRequested:
    """Stop everything, as if ``signum`` had arrived."""

    signum: int


@dataclass
class _Child:
    process: Process
    closed: bool = False
    exited_at: float | None = None
    done: bool = False


class Manager:
    """Starts processes, prints their output through a :class:`Printer`, stops them together."""

    def __init__(
        self, printer: Printer, *, grace: float = DEFAULT_GRACE, drain: float = _DRAIN
    ) -> None:
        self.printer = printer
        self.grace = grace
        self.drain = drain
        #: The one queue every event arrives on; only :meth:`run` takes from it.
        self.events: queue.SimpleQueue[object] = queue.SimpleQueue()
        #: The exit code :meth:`run` returns, set by the first exit or signal.
        self.returncode: int | None = None
        self._children: dict[str, _Child] = {}
        self._stopping = False
        self._killed = False
        self._deadline = 0.0

    def add(self, spec: ProcessSpec) -> None:
        """Add a process to start when :meth:`run` is called."""
        if spec.name in self._children:
            raise ValueError(f"a process named {spec.name!r} was already added")
        self._children[spec.name] = _Child(Process(spec, self.events))
        self.printer.add(spec.name)

    @property
    def processes(self) -> list[Process]:
        """The processes, in the order they were added."""
        return [child.process for child in self._children.values()]

    def request_stop(self, signum: int = signal.SIGTERM) -> None:
        """Ask the loop to stop everything as if ``signum`` arrived; safe from any thread."""
        # SimpleQueue.put is reentrant, so this is also safe inside a signal handler.
        self.events.put(StopRequested(signum))

    def run(self) -> int:
        """Start every process and print their output until all have stopped; the exit code.

        The code is that of the first process to exit, or ``128 + signum`` when a signal
        stopped everything.
        """
        if not self._children:
            return 0
        with self._signals_recorded():
            try:
                self._start_all()
                while not self._finished():
                    self._handle_events()
                    self._notice_exits()
                    self._escalate()
                self._drain_output()
            except BaseException:
                # A bug must not leave children behind.
                for child in self._children.values():
                    child.process.signal_group(signal.SIGKILL)
                raise
        return self.returncode or 0

    @contextmanager
    def _signals_recorded(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # only the main thread may set handlers; callers use request_stop()
            return
        previous = {signum: signal.signal(signum, self._record) for signum in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.request_stop(signum)

    def _start_all(self) -> None:
        for name, child in self._children.items():
            if self._stopping:
                child.done = True
                continue
            try:
                pid = child.process.start()
            except OSError as error:
                child.done = True
                self.printer.system(f"{name} could not start: {error.strerror or error}")
                self._begin_stop(1)
                continue
            self.printer.system(f"{name} started with pid {pid}")

    def _handle_events(self) -> None:
        try:
            event = self.events.get(timeout=_TICK)
        except queue.Empty:
            return
        for _ in range(_BATCH):
            self._handle(event)
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return
        self._handle(event)

    def _handle(self, event: object) -> None:
        if isinstance(event, Line):
            self.printer.write(event.name, event.text)
        elif isinstance(event, OutputClosed):
            self._children[event.name].closed = True
        elif isinstance(event, StopRequested):
            name = signal.Signals(event.signum).name
            if not self._stopping:
                self.printer.system(f"{name} received")
                self._begin_stop(signal_status(event.signum))
            elif not self._killed:
                self.printer.system(f"{name} received again")
                self._kill_all()

    def _notice_exits(self) -> None:
        now = time.monotonic()
        for name, child in self._children.items():
            if child.done:
                continue
            code = child.process.poll()
            if code is None:
                continue
            if child.exited_at is None:
                child.exited_at = now
            if not child.closed and now - child.exited_at < self.drain:
                continue  # let its last lines be printed before the exit line
            child.done = True
            self.printer.system(f"{name} {describe_exit(code)}")
            if not self._stopping:
                self._begin_stop(shell_status(code))

    def _begin_stop(self, returncode: int) -> None:
        if self.returncode is None:
            self.returncode = returncode
        self._stopping = True
        self._deadline = time.monotonic() + self.grace
        self.printer.system("sending SIGTERM to all processes")
        for child in self._children.values():
            # Exited leaders too: whatever they started may still run in their group.
            child.process.signal_group(signal.SIGTERM)

    def _escalate(self) -> None:
        if self._stopping and not self._killed and time.monotonic() >= self._deadline:
            self.printer.system(f"grace period of {self.grace:g}s is over")
            self._kill_all()

    def _kill_all(self) -> None:
        self._killed = True
        self._deadline = time.monotonic() + _KILL_WAIT
        self.printer.system("sending SIGKILL to all processes")
        for child in self._children.values():
            child.process.signal_group(signal.SIGKILL)

    def _finished(self) -> bool:
        if not self._stopping:
            return False
        waiting = [child for child in self._children.values() if not child.done]
        if self._killed:
            if waiting and time.monotonic() >= self._deadline:
                for child in waiting:
                    self.printer.system(
                        f"{child.process.name} (pid {child.process.pid}) did not exit "
                        "after SIGKILL; giving up on it"
                    )
                return True
            return not waiting
        if waiting:
            return False
        return not any(child.process.group_running() for child in self._children.values())

    def _drain_output(self) -> None:
        """Print what the readers still hold, waiting briefly for output left open."""
        deadline = time.monotonic() + _TICK * 10
        while True:
            open_outputs = [c for c in self._children.values() if c.process.pid and not c.closed]
            timeout = max(0.0, deadline - time.monotonic()) if open_outputs else 0.0
            try:
                event = self.events.get(timeout=timeout) if timeout else self.events.get_nowait()
            except queue.Empty:
                return
            if isinstance(event, Line):
                self.printer.write(event.name, event.text)
            elif isinstance(event, OutputClosed):
                self._children[event.name].closed = True
