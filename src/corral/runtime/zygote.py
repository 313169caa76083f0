"""The shim zygote: one small process per home that forks a dyno's shim on request.

``python -I -S .../corral/runtime/zygote.py SOCKET`` loads the shim's code
(:mod:`corral.runtime.shim`), freezes its objects out of the collector's reach
(``gc.freeze``) and then waits on the unix socket SOCKET (mode 0600, its own user's
connections only). For each request (a JSON object: the shim's arguments, the working
directory, the environment) it forks a shim, which makes itself a session leader and runs
exactly as an exec'd one would. The shims share the zygote's pages copy-on-write, so each
costs only the few pages it dirties itself (about 1 MB instead of 4 MB of PSS).

The zygote reaps its shims; they still write their dyno's status file. A request is one
JSON line; the zygote answers with the shim's pid and reaps nothing until the client
answers ``k``, once it has looked the shim up (its start time, a pidfd) while the pid
could not be reused. A shim whose client hangs up instead (it failed, or gave up waiting)
is killed with its group: no dyno runs that the platform does not watch. It is
started detached by the supervisor (:class:`corral.runtime.dyno.Zygote`), outlives a
``kill -9`` of the platform with its shims, and ends when asked (``{"stop": true}``), when
its socket is removed or replaced, or when it has had no shim alive for ``IDLE`` seconds.
Without it, dynos are started under today's exec'd shim: nothing depends on it.

Like the shim, it imports nothing but built-in modules and the shim (run as a file with
``-I -S``: no site-packages, no corral package on its path).
"""

import gc
import json
import os
import select
import signal
import socket
import struct
import sys
import time

#: Name of the zygote's socket in the platform's run directory.
SOCKET_NAME = "shim-zygote.sock"
#: Seconds without any shim alive (and no request) after which the zygote leaves.
IDLE = 60.0
#: Largest request read (a dyno's environment is a few kilobytes).
_MAX_REQUEST = 4 * 1024 * 1024
#: Seconds a client may take to send its request and to hang up after the answer.
CLIENT_TIMEOUT = 5.0


def address(path: str) -> str:
    """``path`` as a socket address short enough for ``sun_path`` (108 bytes): through an
    ``O_PATH`` descriptor of its directory when it is longer (a test's home often is); the
    caller gives it back to :func:`close_address` once connected or bound."""
    if len(path.encode()) < 100:
        return path
    directory = os.open(os.path.dirname(path), os.O_PATH | os.O_CLOEXEC)
    return f"/proc/self/fd/{directory}/{os.path.basename(path)}"


def close_address(where: str) -> None:
    """Close the descriptor an :func:`address` may have opened."""
    if where.startswith("/proc/self/fd/"):
        os.close(int(where.split("/")[4]))


def _bind(path: str) -> socket.socket:
    """A listening socket at ``path``, put in place atomically (a zygote still on the old
    one sees it replaced and leaves)."""
    temporary = f"{path}.{os.getpid()}.tmp"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    where = address(temporary)
    try:
        try:  # noqa: SIM105 - as in the shim, built-in modules only
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        old = os.umask(0o077)
        try:
            listener.bind(where)
        finally:
            os.umask(old)
        os.chmod(temporary, 0o600)
        listener.listen(64)
        os.replace(temporary, path)
    finally:
        close_address(where)
    return listener


def _peer_uid(conn: socket.socket) -> int:
    _, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    return uid


def _read_request(conn: socket.socket) -> dict:
    """One JSON line (or what came before the client shut its side)."""
    data = b""
    while len(data) <= _MAX_REQUEST:
        chunk = conn.recv(65536)
        data += chunk
        if not chunk or data.endswith(b"\n"):
            return json.loads(data)
    raise ValueError("request too large")


def _kill(pid: int) -> None:
    """SIGKILL a shim no client tracks, with its dyno's group (not reaped yet: still ours)."""
    for kill in (os.killpg, os.kill):
        try:  # noqa: SIM105 - as in the shim, built-in modules only
            kill(pid, signal.SIGKILL)
        except OSError:
            pass


class Zygote:
    """The zygote's loop: accept, fork a shim, reap; ``shim`` is the loaded shim module."""

    def __init__(self, path: str, shim) -> None:
        self.path, self.shim = path, shim
        self.children: set[int] = set()
        self.stopping = False
        self.stopper: socket.socket | None = None
        self.last_request = time.monotonic()
        self.listener = _bind(path)
        self.inode = os.stat(path).st_ino
        self.wake_read, self.wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the select, through the pipe
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)

    def _stop(self, *_: object) -> None:
        self.stopping = True

    def serve(self) -> None:
        """Answer requests until told to stop or no longer needed, then leave the socket."""
        while not self.stopping and self._needed():
            gc.freeze()  # what the loop made since the last fork is shared as well
            listening = self.listener.fileno()
            ready, _, _ = select.select([listening, self.wake_read], [], [], 1.0)
            if self.wake_read in ready:
                while True:
                    try:
                        if not os.read(self.wake_read, 512):
                            break
                    except BlockingIOError:
                        break
            self._reap()
            if listening in ready:
                conn, _ = self.listener.accept()
                with conn:
                    self._answer(conn)
        self.listener.close()
        if self._socket_ours():
            os.unlink(self.path)

    def _needed(self) -> bool:
        idle = not self.children and time.monotonic() - self.last_request > IDLE
        return self._socket_ours() and not idle

    def _socket_ours(self) -> bool:
        try:
            return os.stat(self.path).st_ino == self.inode
        except FileNotFoundError:
            return False

    def _reap(self) -> None:
        while self.children:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            self.children.discard(pid)

    def _answer(self, conn: socket.socket) -> None:
        """One request; a client that misbehaves loses its connection, never the zygote."""
        conn.settimeout(CLIENT_TIMEOUT)
        try:
            if _peer_uid(conn) != os.getuid():
                return
            request = _read_request(conn)
            self.last_request = time.monotonic()
            if request.get("stop"):
                self.stopping = True
                conn.sendall(b"stopping\n")
                self.stopper = conn.dup()  # closed by our exit: the client waits for that
                return
            argv, cwd, env = request["argv"], request["cwd"], request["env"]
            if not os.path.isdir(cwd):
                conn.sendall(b"error no such directory\n")
                return
            ready_read, ready_write = os.pipe2(os.O_CLOEXEC)
            pid = os.fork()
            if pid == 0:
                os.close(ready_read)
                self._become_shim(conn, argv, cwd, env, ready_write)
            self.children.add(pid)
            os.close(ready_write)
            try:  # answered once the shim leads its session, as Popen returns after exec
                started, _, _ = select.select([ready_read], [], [], CLIENT_TIMEOUT)
            finally:
                os.close(ready_read)
            # The shim runs on only once the client says it tracks it (its pidfd, its start
            # time): a client that gave up or failed never leaves a dyno no one watches.
            tracked = False
            try:
                if started:
                    conn.sendall(f"{pid}\n".encode())
                    tracked = conn.recv(1) == b"k"
            finally:
                if not tracked:
                    _kill(pid)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return

    def _become_shim(
        self, conn: socket.socket, argv: list, cwd: str, env: dict, ready: int
    ) -> None:
        """In the forked child: leave the zygote's session and run as the dyno's shim."""
        code = 127
        try:
            os.setsid()
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, signal.SIG_DFL)
            conn.close()
            self.listener.close()
            os.close(self.wake_read)
            os.close(self.wake_write)
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(env)
            _show_as(argv)
            os.close(ready)
            code = self.shim.main([str(arg) for arg in argv])
        except BaseException:  # the child must never return into the zygote's loop
            pass
        os._exit(code)


def _show_as(argv: list[str]) -> None:
    """Name the forked shim for ``ps`` (``shim web.1``): its command line is the zygote's."""
    name = argv[argv.index("--dyno") + 1] if "--dyno" in argv else "?"
    with open("/proc/self/comm", "w") as comm:
        comm.write(f"shim {name}"[:15])


def main(argv: list[str]) -> int:
    """Entry point: ``zygote.py SOCKET``."""
    if len(argv) != 1:
        sys.stderr.write("usage: zygote.py SOCKET\n")
        return 2
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import shim  # type: ignore[import-not-found]  # beside this file; -I leaves it off the path

    gc.collect()
    zygote = Zygote(argv[0], shim)
    gc.freeze()
    zygote.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
