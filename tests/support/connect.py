"""Connecting as another uid, and loopback listeners to connect to (network isolation).

``connect_as`` forks a child that drops to the uid (and gid) given and tries one TCP
connection, so no executable needs to be reachable by that uid; it says what happened
in a word: ``"connected"``, ``"refused"`` (a reset: the firewall's answer) or
``"timed out"`` (a drop: a slow failure the rules must never cause).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

_OUTCOMES = {0: "connected", 1: "refused", 2: "timed out"}


def connect_as(uid: int, host: str, port: int, timeout: float = 5.0) -> str:
    """Try one connection to ``host:port`` as ``uid`` (root's 0 included); say how it went."""
    pid = os.fork()
    if pid == 0:  # the child: only system calls, then _exit, whatever happens
        code = 3
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect((host, port))
            code = 0
        except ConnectionRefusedError:
            code = 1
        except TimeoutError:
            code = 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return _OUTCOMES.get(os.waitstatus_to_exitcode(status), "failed otherwise")


@contextmanager
def listening(host: str = "127.0.0.1", count: int = 1) -> Iterator[list[int]]:
    """``count`` sockets listening on ``host``, port 0 each; yields their ports."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(family, socket.SOCK_STREAM))
            sock.bind((host, 0))
            sock.listen(16)
            ports.append(sock.getsockname()[1])
        yield ports
