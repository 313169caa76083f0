"""``corral server``: the whole platform on one machine, started by one command.

The server process runs the dyno manager. The API (gunicorn serving
:mod:`corral.api.wsgi`) and the router run as processes of their own, held by the same
shim as dynos, so a ``kill -9`` of the server leaves them serving and the next start
adopts them. The API is reached through the router at the platform's own host names
(``localhost``, ``127.0.0.1``), so one port serves apps, the API and git.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import socket
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from corral.config import Settings
from corral.credentials import Credentials, credentials_path
from corral.errors import UserError
from corral.router.table import AppRoute, Backend
from corral.runtime import dyno as dynos
from corral.runtime.dyno_manager import DynoManager, ManagerOptions, free_port
from corral.store import Store

#: The name under which the API appears in the route table (a reserved app name).
PLATFORM_APP = "corral"


@dataclass(frozen=True)
class ServerOptions:
    """What ``corral server`` was asked for."""

    host: str = "127.0.0.1"
    port: int = 8080
    domain: str = "localhost"
    workers: int = 2
    manager: ManagerOptions = field(default_factory=ManagerOptions)

    @property
    def url(self) -> str:
        """The dashboard/API URL users and the CLI talk to."""
        return f"http://{self.domain}:{self.port}"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # os.open's mode is filtered by the umask
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def ensure_admin_token(settings: Settings, store: Store, url: str) -> tuple[Path, bool]:
    """Create the admin token on first start; write it (0600) and the CLI's credentials."""
    token_file = settings.home / "admin-token"
    if token_file.exists():
        return token_file, False
    _, secret = store.create_token("admin")
    _write_private(token_file, secret + "\n")
    Credentials(server=url, token=secret).save()
    return token_file, True


class Platform:
    """The server process: starts or adopts the API and router, runs the dyno manager."""

    def __init__(self, settings: Settings, options: ServerOptions) -> None:
        self.settings = settings
        self.options = options
        self.store = Store.for_settings(settings)
        self.state_file = settings.run_dir / "platform.json"
        self.processes: dict[str, tuple[dynos.DynoProcess, int]] = {}

    # -- platform processes -------------------------------------------------------------

    def _environ(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("GUNICORN_", "VIRTUAL_ENV"))
        }
        env.update(
            CORRAL_HOME=str(self.settings.home),
            CORRAL_DOMAIN=self.options.domain,
            CORRAL_ROUTER_PORT=str(self.options.port),
            PYTHONUNBUFFERED="1",
            XDG_RUNTIME_DIR=str(self.settings.run_dir / "platform"),
        )
        (self.settings.run_dir / "platform").mkdir(parents=True, exist_ok=True, mode=0o700)
        return env

    def _commands(self, api_port: int) -> dict[str, list[str]]:
        python = sys.executable
        bind = f"{self.options.host}:{self.options.port}"
        return {
            "api": [
                python, "-m", "gunicorn", "corral.api.wsgi:app",
                "--bind", f"127.0.0.1:{api_port}",
                "--worker-class", "gthread", "--workers", str(self.options.workers),
                "--threads", "8", "--timeout", "120", "--graceful-timeout", "10",
                "--access-logfile", "-",
            ],
            "router": [
                python, "-m", "corral.router",
                "--table", str(self.settings.routes_path),
                "--bind", bind,
                "--domain", self.options.domain,
                "--logs", str(self.settings.home / "logs"),
            ],
        }  # fmt: skip

    def _load_state(self) -> dict[str, dict]:
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _save_state(self) -> None:
        state = {
            name: {"pid": proc.pid, "started_at": proc.started_at, "port": port}
            for name, (proc, port) in self.processes.items()
        }
        _write_private(self.state_file, json.dumps(state))

    def start_processes(self) -> list[str]:
        """Adopt the API and router if they still run, else start them; returns what it did."""
        done = []
        state = self._load_state()
        api_port = state.get("api", {}).get("port") or free_port()
        commands = self._commands(api_port)
        for name in ("api", "router"):
            entry = state.get(name)
            port = api_port if name == "api" else self.options.port
            if entry:
                proc = dynos.DynoProcess(entry["pid"], entry["started_at"])
                if proc.alive():
                    self.processes[name] = (proc, port)
                    done.append(f"adopted {name} (pid {proc.pid})")
                    continue
            if name == "router":
                self._check_port_free()
            self.processes[name] = (self._start(name, commands[name]), port)
            done.append(f"started {name} (pid {self.processes[name][0].pid})")
        self._save_state()
        return done

    def _check_port_free(self) -> None:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.options.host, self.options.port))
            except OSError as exc:
                raise UserError(
                    f"Cannot listen on {self.options.host}:{self.options.port} "
                    f"({exc.strerror}); stop what uses it or pass --bind HOST:PORT."
                ) from None

    def _start(self, name: str, command: list[str]) -> dynos.DynoProcess:
        if name == "api":
            # builds run in the API's workers: those the store calls unfinished died with it
            self.store.fail_unfinished_builds()
        spec = dynos.DynoSpec(
            app=PLATFORM_APP,
            name=name,
            command="exec " + shlex.join(command),
            cwd=self.settings.home,
            env=self._environ(),
        )
        log_dir = self.settings.home / "logs" / PLATFORM_APP
        proc, _popen = dynos.start(spec, log_dir, self.settings.run_dir)
        return proc

    def platform_route(self) -> AppRoute:
        """The route table entry that sends the platform's own host names to the API."""
        _, api_port = self.processes["api"]
        return AppRoute(PLATFORM_APP, (Backend("api", "127.0.0.1", api_port),))

    async def stop_processes(self) -> None:
        """Stop the API and router (a clean shutdown)."""
        await asyncio.gather(*(dynos.stop(proc, grace=10) for proc, _ in self.processes.values()))
        self.state_file.unlink(missing_ok=True)

    # -- the loop ------------------------------------------------------------------------

    async def serve(self, stop: asyncio.Event) -> None:
        """Run the dyno manager until ``stop``; then stop dynos, API and router."""
        manager = DynoManager(
            self.settings,
            self.store,
            replace(self.options.manager, domain=self.options.domain),
            platform_route=self.platform_route(),
            platform_hosts=self._platform_hosts(),
        )
        supervise = asyncio.create_task(self._supervise(stop))
        await manager.run(stop)
        supervise.cancel()
        await manager.stop_all(self.options.manager.grace)
        await self.stop_processes()

    def _platform_hosts(self) -> list[str]:
        hosts = {self.options.domain, "localhost", "127.0.0.1", self.options.host}
        return sorted(h for h in hosts if h not in ("0.0.0.0", "::"))

    async def _supervise(self, stop: asyncio.Event) -> None:
        """Restart the API or router if it dies (they are the platform's own dynos)."""
        while not stop.is_set():
            await asyncio.sleep(1)
            died = [name for name, (proc, _) in self.processes.items() if not proc.alive()]
            if died:
                state = self._load_state()
                api_port = state.get("api", {}).get("port") or free_port()
                commands = self._commands(api_port)
                for name in died:
                    _, port = self.processes[name]
                    self.processes[name] = (self._start(name, commands[name]), port)
                self._save_state()


def run_server(settings: Settings, options: ServerOptions, say=print) -> None:
    """Start (or adopt) the platform and run it until SIGINT or SIGTERM."""
    platform = Platform(settings, options)
    token_file, created = ensure_admin_token(settings, platform.store, options.url)
    for line in platform.start_processes():
        say(f"corral: {line}")
    say(f"corral: dashboard and API at {options.url}/")
    say(f"corral: apps are served at http://<app>.{options.domain}:{options.port}/")
    if created:
        say(f"corral: admin token written to {token_file} (and to {credentials_path()})")
    else:
        say(f"corral: admin token in {token_file}")
    say("corral: press Ctrl-C to stop")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await platform.serve(stop)

    try:
        asyncio.run(main())
    except OSError as exc:
        raise UserError(f"The platform could not start ({exc}).") from None
    say("corral: stopped")
