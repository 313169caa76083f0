"""The wire protocol of an attached one-off (``corral run``), shared by the CLI and the API.

The CLI opens a WebSocket at ``GET /api/v1/apps/<app>/run``, with the bearer token and the
:data:`START_HEADER` (JSON: the command, whether to use a pseudo-terminal, its size and
``TERM``), so everything is checked before the upgrade and a refusal is a plain HTTP error.
After the upgrade, binary messages carry bytes: their first byte names the stream
(:data:`STDIN`, :data:`STDOUT`, :data:`STDERR`). Text messages are JSON control messages:
``resize`` (rows, cols), ``eof`` and ``signal`` (name) from the client; ``started`` (dyno)
and ``exit`` (status, as a shell reports it) from the server, which then closes.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
from typing import Any

from wsproto import ConnectionState, WSConnection
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

__all__ = [
    "SIGNALS",
    "START_HEADER",
    "STDERR",
    "STDIN",
    "STDOUT",
    "Peer",
    "control",
    "data",
    "parse_control",
]

#: The request header carrying the session's start parameters (JSON, ASCII).
START_HEADER = "Corral-Run"
STDIN, STDOUT, STDERR = 0, 1, 2
#: Signals a client may send to a one-off without a pseudo-terminal.
SIGNALS = frozenset({"INT", "QUIT", "TERM", "HUP"})


def data(stream: int, payload: bytes) -> bytes:
    """A binary message carrying ``payload`` on ``stream``."""
    return bytes([stream]) + payload


def control(kind: str, **fields: Any) -> str:
    """A text control message."""
    return json.dumps({"type": kind, **fields})


def parse_control(text: str) -> dict[str, Any]:
    """A text control message as a dict with a ``type`` ({} when it is not one)."""
    try:
        message = json.loads(text)
    except ValueError:
        return {}
    return message if isinstance(message, dict) and isinstance(message.get("type"), str) else {}


class Peer:
    """One end of the session's WebSocket over a non-blocking socket: whole messages in and out.

    Outgoing bytes are buffered (:meth:`flush` sends what the socket takes), so neither end
    ever blocks on a peer that is itself blocked sending: each loop keeps reading.
    """

    def __init__(self, sock: socket.socket, ws: WSConnection) -> None:
        self.sock = sock
        self.ws = ws
        self.outgoing = bytearray()
        self.closed = False
        self._parts: list[bytes | bytearray | str] = []
        sock.setblocking(False)

    def send_data(self, stream: int, payload: bytes) -> None:
        """Queue ``payload`` on ``stream``."""
        self.outgoing += self.ws.send(BytesMessage(data=data(stream, payload)))
        self.flush()

    def send_control(self, kind: str, **fields: Any) -> None:
        """Queue a control message."""
        self.outgoing += self.ws.send(TextMessage(data=control(kind, **fields)))
        self.flush()

    def flush(self) -> None:
        """Send what the socket takes now of the queued bytes."""
        while self.outgoing:
            try:
                sent = self.sock.send(self.outgoing)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # gone: what it did not take is lost with it
                self.outgoing.clear()
                self.closed = True
                return
            del self.outgoing[:sent]

    def drain(self, timeout: float) -> None:
        """Send every queued byte, waiting up to ``timeout`` seconds for the socket."""
        deadline = time.monotonic() + timeout
        while self.outgoing and not self.closed and time.monotonic() < deadline:
            select.select([], [self.sock], [], max(deadline - time.monotonic(), 0))
            self.flush()

    def receive(self) -> list[bytes | str]:
        """Read what arrived; the whole messages in it. Sets :attr:`closed` when the peer left."""
        try:
            chunk = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError:
            chunk = b""
        self.ws.receive_data(chunk or None)
        messages = self.messages()
        if not chunk:
            self.closed = True
        return messages

    def messages(self) -> list[bytes | str]:
        """The whole messages already received (with the handshake's answer, say)."""
        messages: list[bytes | str] = []
        for event in self.ws.events():
            if isinstance(event, CloseConnection):
                if self.ws.state is not ConnectionState.CLOSED:
                    self.outgoing += self.ws.send(event.response())
                    self.flush()
                self.closed = True
            elif isinstance(event, Ping):
                self.outgoing += self.ws.send(event.response())
            elif isinstance(event, TextMessage | BytesMessage):
                self._parts.append(event.data)
                if event.message_finished:
                    if isinstance(event, TextMessage):
                        messages.append("".join(str(p) for p in self._parts))
                    else:
                        messages.append(b"".join(p for p in self._parts if not isinstance(p, str)))
                    self._parts = []
        self.flush()
        return messages

    def close(self, linger: float = 30.0) -> None:
        """Say goodbye (if still open), send what is queued (for up to ``linger`` seconds),
        close the socket."""
        if self.ws.state is ConnectionState.OPEN:
            self.outgoing += self.ws.send(CloseConnection(code=1000))
        self.drain(linger)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.closed = True
