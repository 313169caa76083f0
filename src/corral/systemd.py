"""``corral server --print-systemd-unit``: a systemd unit that runs this server as it was asked.

``KillMode=process`` lets dynos, the API and the router outlive a restart or crash of the
server (the next start adopts them); ``Delegate=yes`` hands the unit's cgroup to corral
(as root it makes one per dyno); the file limit is raised for the router's connections.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

__all__ = ["unit_text"]

#: Open files the router may use (two per proxied connection, plus the platform's own).
FILE_LIMIT = 65536


def _quote(word: str) -> str:
    # systemd splits ExecStart= like a shell would for plain words and double quotes; a
    # percent sign would be a specifier
    return shlex.quote(word.replace("%", "%%"))


def unit_text(command: Sequence[str], home: Path, *, root: bool) -> str:
    """The unit file for ``command`` (absolute executable first) serving ``home``."""
    exec_start = " ".join(_quote(word) for word in command)
    lines = [
        "[Unit]",
        "Description=corral: git push hosting for Python web apps",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"Environment={_quote(f'CORRAL_HOME={home}')}",
        "Environment=PYTHONUNBUFFERED=1",
        f"ExecStart={exec_start}",
        # SIGTERM to the server alone: it stops the dynos and its services itself, in order;
        # a crash or a kill leaves them serving, and the next start adopts them
        "KillMode=process",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=90",
        "Restart=on-failure",
        "RestartSec=2",
        f"LimitNOFILE={FILE_LIMIT}",
        *(["Delegate=yes"] if root else []),
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)
