"""The server's end of ``corral run``: a WebSocket taken over from gunicorn, bridged to a one-off.

gunicorn's threaded worker hands the client's socket to the app (``gunicorn.socket``); the
view takes it over (:func:`take_socket`: gunicorn is left an unconnected stand-in, so
its close neither half-closes nor closes the connection), answers the upgrade itself and runs the
session in a thread of its own, then tells gunicorn the request is done
(:class:`Hijacked`). So a session holds none of the worker's few threads, however long it
runs. When the client goes away, the one-off is killed.
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Response
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request

from corral import wire
from corral.exitcodes import shell_status
from corral.runtime.oneoff import Attached

__all__ = ["Hijacked", "accept", "bridge", "take_socket", "upgrade_socket"]

#: Input queued for the command beyond which the client's socket is not read.
_MAX_PENDING_INPUT = 1 << 16
#: Output queued for the client beyond which the command's output is not read.
_MAX_PENDING_OUTPUT = 1 << 18
#: How long output is still relayed after the command exited (a background job may hold it).
_AFTER_EXIT = 0.5


class Hijacked(Response):
    """The answer of a view that served the connection itself: gunicorn just closes it.

    gunicorn treats a StopIteration out of the WSGI call as "close this connection" and
    writes nothing more to the socket.
    """

    def __call__(self, environ: Any, start_response: Any) -> Any:
        raise StopIteration


def upgrade_socket(environ: Mapping[str, Any]) -> socket.socket | None:
    """The client's raw socket, when the server that runs the API hands it over."""
    sock = environ.get("gunicorn.socket")
    return sock if isinstance(sock, socket.socket) else None


def take_socket(sock: socket.socket) -> socket.socket:
    """The connection of ``sock`` as a socket of our own. ``sock`` (gunicorn's) is left
    holding an unconnected stand-in, so gunicorn's own close of it, half-close first,
    neither ends the connection nor fails."""
    ours = sock.dup()
    with socket.socket(sock.family, socket.SOCK_STREAM) as stand_in:
        os.dup2(stand_in.fileno(), sock.fileno(), inheritable=False)
    return ours


def accept(sock: socket.socket, environ: Mapping[str, Any]) -> wire.Peer:
    """Answer the WebSocket upgrade of the request in ``environ`` on ``sock``."""
    headers = [
        (key[5:].replace("_", "-").lower().encode(), str(value).encode("latin-1"))
        for key, value in environ.items()
        if key.startswith("HTTP_")
    ]
    ws = WSConnection(ConnectionType.SERVER)
    ws.initiate_upgrade_connection(headers, str(environ.get("RAW_URI") or environ["PATH_INFO"]))
    for event in ws.events():
        if isinstance(event, Request):
            break
    sock.setblocking(True)
    sock.sendall(ws.send(AcceptConnection()))
    return wire.Peer(sock, ws)


def _handle(session: Attached, messages: Iterable[bytes | str]) -> None:
    for message in messages:
        if isinstance(message, bytes):
            if message[:1] == bytes([wire.STDIN]):
                session.write(message[1:])
            continue
        control = wire.parse_control(message)
        kind = control.get("type")
        if kind == "resize":
            rows, cols = control.get("rows"), control.get("cols")
            if isinstance(rows, int) and isinstance(cols, int) and 0 < rows < 10000 > cols > 0:
                session.resize(rows, cols)
        elif kind == "eof":
            session.end_input()
        elif kind == "signal" and control.get("name") in wire.SIGNALS:
            session.send_signal(control["name"])


def _relay(peer: wire.Peer, fd: int, stream: int) -> bool | None:
    """Send what can be read from ``fd`` now: True if some was, None if none yet, False at
    its end."""
    try:
        chunk = os.read(fd, 65536)
    except BlockingIOError:
        return None
    except OSError:  # EIO: the pty's last holder closed it
        chunk = b""
    if chunk:
        peer.send_data(stream, chunk)
    return bool(chunk)


def bridge(peer: wire.Peer, session: Attached) -> int | None:
    """Relay between the client and the one-off until it exits; its status, or None if the
    client went away first. Either way the one-off's whole session is ended."""
    open_outputs = dict(session.outputs)
    exited_at: float | None = None
    try:
        while not peer.closed:
            reads: list[Any] = [peer.sock] if session.pending() < _MAX_PENDING_INPUT else []
            if len(peer.outgoing) < _MAX_PENDING_OUTPUT:
                reads += list(open_outputs)
            writes: list[Any] = [peer.sock] if peer.outgoing else []
            if session.pending() and session.stdin is not None:
                writes.append(session.stdin)
            readable, writable, _ = select.select(reads, writes, [], 0.1)
            if writable:
                peer.flush()
                session.flush()
            if peer.sock in readable:
                _handle(session, peer.receive())
            for fd in readable:
                if fd in open_outputs and _relay(peer, fd, open_outputs[fd]) is False:
                    del open_outputs[fd]
            if session.process.poll() is None:
                continue
            exited_at = exited_at or time.monotonic()
            if open_outputs and time.monotonic() - exited_at < _AFTER_EXIT:
                continue  # its output may still be on the way, or throttled by a slow client
            for fd, stream in open_outputs.items():  # what is written is sent; a job left is cut
                os.set_blocking(fd, False)
                while _relay(peer, fd, stream):
                    pass
            return shell_status(session.process.returncode)
        return None
    finally:
        session.close()
