"""The CLI's end of ``corral run``: a WebSocket to the API, bridged to this terminal.

When stdin and stdout are a terminal, the one-off gets a pseudo-terminal of the same size
and this terminal goes raw, so every key (Ctrl-C, Ctrl-D, arrows) reaches the remote
process as typed; a resize here resizes it there. Otherwise stdin is sent as it comes, its
end closes the remote's stdin, Ctrl-C sends SIGINT, and stdout and stderr stay apart.
The terminal is always restored. The protocol is :mod:`corral.wire`.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shlex
import signal
import socket
import sys
import termios
import tty
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from urllib.parse import urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request

from corral import wire
from corral.cli.client import ApiClient, app_path
from corral.cli.transport import Response, tls_context
from corral.errors import UserError

__all__ = ["Session", "run_attached"]

#: Input queued for the server beyond which stdin is not read.
_MAX_OUTGOING = 1 << 18


@dataclass(frozen=True)
class Session:
    """What ``corral run`` asks for."""

    app: str
    command: tuple[str, ...]
    tty: bool
    #: The app's WebSocket route (``run``; ``psql`` for ``pg:psql``) and what else its
    #: start header says.
    route: str = "run"
    extra: tuple[tuple[str, object], ...] = ()


def _connect(api: ApiClient, session: Session) -> wire.Peer:
    """Open the WebSocket, token and command in the upgrade request; refusals are UserErrors."""
    url = urlsplit(api.server)
    secure = url.scheme == "https"
    host = url.hostname or "localhost"
    port = url.port or (443 if secure else 80)
    start: dict[str, object] = {"command": list(session.command), "tty": session.tty}
    start.update(session.extra)
    if session.tty:
        size = _terminal_size()
        start.update(rows=size.lines, cols=size.columns, term=os.environ.get("TERM", "xterm"))
    path = app_path(session.app, session.route)
    try:
        sock = socket.create_connection((host, port), timeout=10)
        if secure:
            # the CAs every other command trusts ($SSL_CERT_FILE, certifi)
            sock = tls_context().wrap_socket(sock, server_hostname=host)
    except OSError as exc:
        raise UserError(
            f"Cannot reach the corral server at {api.server}; is `corral server` running? "
            f"({exc.strerror or exc})"
        ) from None
    ws = WSConnection(ConnectionType.CLIENT)
    headers = [
        (b"authorization", f"Bearer {api.credentials.token}".encode()),
        (wire.START_HEADER.encode(), json.dumps(start).encode()),
    ]
    sock.settimeout(30)
    sock.sendall(ws.send(Request(host=url.netloc, target=path, extra_headers=headers)))
    refused: RejectConnection | None = None
    body = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError:
            chunk = b""
        ws.receive_data(chunk or None)
        for event in ws.events():
            if isinstance(event, AcceptConnection):
                return wire.Peer(sock, ws)
            if isinstance(event, RejectConnection):
                refused = event
            elif isinstance(event, RejectData):
                body += event.data
                if event.body_finished:
                    chunk = b""
        if not chunk:
            break
    sock.close()
    if refused is None:
        raise UserError("The server closed the connection before the command started.")
    # The same one-line errors as every other command's.
    from http import HTTPStatus

    try:
        phrase = HTTPStatus(refused.status_code).phrase
    except ValueError:
        phrase = ""
    response = Response(
        status_code=refused.status_code,
        reason_phrase=phrase,
        headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in refused.headers},
        method="GET",
        path=path,
        _content=body,
    )
    api._check(response)
    raise UserError(f"The server answered {refused.status_code} instead of starting the command.")


@contextlib.contextmanager
def _raw_terminal(enabled: bool) -> Iterator[None]:
    """This terminal in raw mode for the block (if ``enabled``), restored whatever happens."""
    if not enabled:
        yield
        return
    saved = termios.tcgetattr(sys.stdin.fileno())
    try:
        tty.setraw(sys.stdin.fileno())
        yield
    finally:
        termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)


@contextlib.contextmanager
def _signals(*, tty_mode: bool) -> Iterator[tuple[int, list[int]]]:
    """A wake-up fd and the list of signals received since the last look, for the block."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    received: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    def leave(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)  # unwinds: the terminal is restored, the socket closed

    caught = [signal.SIGWINCH] if tty_mode else [signal.SIGINT, signal.SIGQUIT]
    previous = {s: signal.signal(s, note) for s in caught}
    previous |= {s: signal.signal(s, leave) for s in (signal.SIGTERM, signal.SIGHUP)}
    old_wakeup = signal.set_wakeup_fd(write_end)
    try:
        yield read_end, received
    finally:
        signal.set_wakeup_fd(old_wakeup)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.close(read_end)
        os.close(write_end)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _terminal_size() -> os.terminal_size:
    # the terminal's own size: $COLUMNS / $LINES, which shutil prefers, may be stale
    try:
        return os.get_terminal_size(sys.stdout.fileno())
    except OSError:
        return os.terminal_size((80, 24))


def _relay_signals(peer: wire.Peer, received: list[int]) -> None:
    for signum in received:
        if signum == signal.SIGWINCH:
            size = _terminal_size()
            peer.send_control("resize", rows=size.lines, cols=size.columns)
        else:
            peer.send_control("signal", name=signal.Signals(signum).name[3:])
    received.clear()


def run_attached(api: ApiClient, session: Session) -> int:
    """Run ``session`` and relay it until the one-off exits; its exit status."""
    peer = _connect(api, session)
    stdin: int | None = sys.stdin.fileno() if sys.stdin is not None else None
    status: int | None = None
    try:
        with _raw_terminal(session.tty), _signals(tty_mode=session.tty) as (wakeup, received):
            messages = peer.messages()
            while True:
                for message in messages:
                    if isinstance(message, bytes):
                        out = {wire.STDOUT: 1, wire.STDERR: 2}.get(message[0], 1)
                        _write_all(out, message[1:])
                        continue
                    control = wire.parse_control(message)
                    if control.get("type") == "exit":
                        status = int(control.get("status", 1))
                    elif control.get("type") == "started" and sys.stderr.isatty():
                        end = "\r\n" if session.tty else "\n"  # raw mode: no newline translation
                        text = f"Running `{shlex.join(session.command)}` on {session.app}... "
                        _write_all(2, f"{text}up, {control.get('dyno')}{end}".encode())
                if status is not None or peer.closed:
                    break
                reads: list[int | socket.socket] = [peer.sock, wakeup]
                if stdin is not None and len(peer.outgoing) < _MAX_OUTGOING:
                    reads.append(stdin)
                writes = [peer.sock] if peer.outgoing else []
                readable, _, _ = select.select(reads, writes, [], None)
                peer.flush()
                if wakeup in readable:
                    os.read(wakeup, 512)
                # before any input read with them: a resize applies to what is typed after it
                _relay_signals(peer, received)
                if stdin is not None and stdin in readable:
                    try:
                        chunk = os.read(stdin, 65536)
                    except OSError:
                        chunk = b""
                    if chunk:
                        peer.send_data(wire.STDIN, chunk)
                    else:
                        peer.send_control("eof")
                        stdin = None
                messages = peer.receive() if peer.sock in readable else []
    finally:
        peer.close()
    if status is None:
        raise UserError(
            "The connection to the server broke off before the command finished; "
            "it was stopped. Run it again."
        )
    return status
