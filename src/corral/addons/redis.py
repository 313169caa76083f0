"""One ``redis`` add-on: a ``redis-server`` of its own, a supervised platform service.

Its files are ``addons/<addon>/``: ``redis.conf`` (port, password, ``maxmemory`` from the
plan; 0600, its server's user's) and ``data/`` (the append-only file: a write Redis has
answered survives a ``kill -9``). The server runs as Debian's ``redis`` user when the
platform is root, listens on a loopback port of its own with a password, and is declared
to the supervisor for as long as its ``redis.conf`` exists: destroying the add-on removes
the file, the supervisor stops the server, then the directory goes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import psutil

from corral.addons.cluster import ClusterError, Owner, reason
from corral.addons.postgres import new_password
from corral.config import Settings
from corral.files import atomic_write
from corral.runtime.services import ServiceSpec, free_port

__all__ = ["PLANS", "create_server", "destroy_server", "redis_facts", "service_specs"]

#: Plans and their ``maxmemory`` in MB.
PLANS = {"mini": 64, "standard": 256, "premium": 1024}
#: Where Debian's ``redis-server`` and ``redis-tools`` put the programs.
PROGRAMS = Path("/usr/bin")
#: Seconds a create waits for the supervisor to have the server answering.
READY_TIMEOUT = 30.0
_CONF = "redis.conf"


def _programs() -> Path:
    if not all(os.access(PROGRAMS / name, os.X_OK) for name in ("redis-server", "redis-cli")):
        raise ClusterError(
            "Redis is not installed on the corral server: install Debian's redis-server "
            "package there (apt-get install redis-server), then create the add-on again."
        )
    return PROGRAMS


def _owner() -> Owner:
    return Owner.find("redis", "redis-server")


def _settings_of(conf: Path) -> dict[str, str]:
    entries = (line.split(None, 1) for line in conf.read_text().splitlines() if line.strip())
    return {parts[0]: parts[1] if len(parts) > 1 else "" for parts in entries}


def create_server(settings: Settings, addon: str, plan: str) -> str:
    """Make ``addon``'s server (the supervisor starts it) and wait until it answers; the
    URL apps connect with. On failure nothing of it is left."""
    programs, owner = _programs(), _owner()
    directory = settings.addons_dir / addon
    password, port = new_password(), free_port()
    try:
        for path in (settings.home, settings.addons_dir, directory):
            path.mkdir(parents=True, exist_ok=True)
            if path.stat().st_uid == os.geteuid():
                path.chmod(0o711)
        data = directory / "data"
        data.mkdir(mode=0o700)
        os.chown(data, owner.uid, owner.gid)
        conf = "\n".join([
            f"port {port}", "bind 127.0.0.1", "protected-mode yes", f"requirepass {password}",
            f"maxmemory {PLANS[plan]}mb", "maxmemory-policy noeviction", f"dir {data}",
            "appendonly yes", "appendfsync everysec", "daemonize no", 'logfile ""',
        ])  # fmt: skip
        # written last: from here on the supervisor runs it
        atomic_write(directory / _CONF, conf + "\n", mode=0o600)
        os.chown(directory / _CONF, owner.uid, owner.gid)
        _wait_ready(programs, port, password)
    except BaseException:
        destroy_server(settings, addon)
        raise
    return f"redis://:{password}@127.0.0.1:{port}"


def _cli(programs: Path, port: int, password: str, *args: str) -> subprocess.CompletedProcess:
    # the password in the environment (REDISCLI_AUTH), never on a command line
    env = {"PATH": "/usr/bin:/bin", "REDISCLI_AUTH": password}
    return subprocess.run(
        [str(programs / "redis-cli"), "-h", "127.0.0.1", "-p", str(port), *args],
        env=env, capture_output=True, text=True, check=False, timeout=10,
    )  # fmt: skip


def _wait_ready(programs: Path, port: int, password: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        done = _cli(programs, port, password, "PING")
        if done.stdout.strip() == "PONG":
            return
        if time.monotonic() > deadline:
            raise ClusterError(
                f"The add-on's Redis did not answer within {READY_TIMEOUT:g}s "
                f"({reason(done.stdout + done.stderr)}); is `corral server` running?"
            )
        time.sleep(0.2)


def destroy_server(settings: Settings, addon: str, wait: float = 20.0) -> None:
    """Stop ``addon``'s server (the supervisor does, once its conf is gone) and remove its
    files; a server still running after ``wait`` seconds is killed here."""
    directory = settings.addons_dir / addon
    (directory / _CONF).unlink(missing_ok=True)
    data = directory / "data"
    deadline = time.monotonic() + wait
    while _running_in(data) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in _running_in(data):
        os.kill(pid, 9)  # the platform is not running: nothing else will stop it
    shutil.rmtree(directory, ignore_errors=True)


def _running_in(data: Path) -> list[int]:
    """The redis-server processes working in ``data`` (their cwd is their ``dir``)."""
    found = []
    for process in psutil.process_iter(["name", "cwd"]):
        if process.info["name"] == "redis-server" and process.info["cwd"] == str(data):
            found.append(process.pid)
    return found


def redis_facts(settings: Settings, addon: str) -> dict[str, str | int]:
    """What ``redis:info`` shows: version, memory used and allowed, clients, keys."""
    conf = _settings_of(settings.addons_dir / addon / _CONF)
    done = _cli(_programs(), int(conf["port"]), conf["requirepass"], "INFO")
    if done.returncode != 0 or "redis_version" not in done.stdout:
        raise ClusterError(f"The add-on's Redis did not answer ({reason(done.stderr)}).")
    info = dict(
        line.split(":", 1) for line in done.stdout.splitlines() if ":" in line and line[0] != "#"
    )
    keys = sum(
        int(value.split(",")[0].split("=")[1])
        for key, value in info.items()
        if key.startswith("db")
    )
    return {
        "version": info["redis_version"].strip(),
        "size": int(info["used_memory"]),
        "maxmemory": int(info["maxmemory"]),
        "connections": int(info["connected_clients"]),
        "keys": keys,
    }


def service_specs(settings: Settings) -> list[ServiceSpec]:
    """Every Redis add-on's server, as a platform service named for its add-on."""
    root = settings.addons_dir
    confs = sorted(root.glob(f"redis-*/{_CONF}")) if root.is_dir() else []
    if not confs:
        return []
    owner = _owner()
    user = (owner.uid, owner.gid) if os.geteuid() == 0 else None
    return [
        ServiceSpec(
            conf.parent.name,
            (str(PROGRAMS / "redis-server"), str(conf)),
            conf.parent / "data",
            {"PATH": "/usr/bin:/bin"},
            user=user,
        )
        for conf in confs
    ]
