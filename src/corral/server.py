"""``corral server``: the whole platform on one machine, started by one command.

The server process runs the supervisor. The API (gunicorn serving
:mod:`corral.api.wsgi`) and the router run as processes of their own, held by the same
shim as dynos, so a ``kill -9`` of the server leaves them serving and the next start
adopts them. The API is reached through the router at the platform's own host names
(``localhost``, ``127.0.0.1``), so one port serves apps, the API and git.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from corral.config import Settings
from corral.credentials import Credentials, credentials_path
from corral.errors import UserError
from corral.files import atomic_write
from corral.runtime.services import PORT, ServiceSpec
from corral.runtime.supervisor import Supervisor, SupervisorOptions
from corral.store import Store


@dataclass(frozen=True)
class ServerOptions:
    """What ``corral server`` was asked for beyond its settings (domain and port are there)."""

    host: str = "127.0.0.1"
    workers: int = 2
    manager: SupervisorOptions = field(default_factory=SupervisorOptions)


def ensure_admin_token(settings: Settings, store: Store, url: str) -> tuple[Path, bool]:
    """Create the admin token on first start; write it (0600) and the CLI's credentials."""
    token_file = settings.home / "admin-token"
    if token_file.exists():
        return token_file, False
    _, secret = store.create_token("admin")
    token_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(token_file, secret + "\n", mode=0o600)
    Credentials(server=url, token=secret).save()
    return token_file, True


class Platform:
    """The server process: the platform's services and every app's dynos, one supervisor."""

    def __init__(self, settings: Settings, options: ServerOptions) -> None:
        self.settings = settings
        self.options = options
        self.store = Store.for_settings(settings)
        self.supervisor = Supervisor(
            settings,
            self.store,
            options.manager,
            services=self._services(),
            platform_hosts=self._platform_hosts(),
        )

    def _environ(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("GUNICORN_", "VIRTUAL_ENV"))
        }
        env.update(
            CORRAL_HOME=str(self.settings.home),
            CORRAL_DOMAIN=self.settings.domain,
            CORRAL_ROUTER_PORT=str(self.settings.router_port),
            CORRAL_MEMORY_QUOTA_MB=str(self.options.manager.memory_quota >> 20),
            PYTHONUNBUFFERED="1",
            XDG_RUNTIME_DIR=str(self.settings.run_dir / "platform"),
        )
        return env

    def _services(self) -> list[ServiceSpec]:
        python, env, home = sys.executable, self._environ(), self.settings.home
        return [
            ServiceSpec(
                "api",
                (
                    python, "-m", "gunicorn", "corral.api.wsgi:app",
                    "--bind", f"127.0.0.1:{PORT}",
                    "--worker-class", "gthread", "--workers", str(self.options.workers),
                    "--threads", "8", "--timeout", "120", "--graceful-timeout", "10",
                    "--access-logfile", "-",
                ),
                home,
                env,
                listens=True,
                # builds run in the API's workers: those the store calls unfinished died with it
                before_start=self.store.fail_unfinished_builds,
            ),
            ServiceSpec(
                "router",
                (
                    python, "-m", "corral.router",
                    "--table", str(self.settings.routes_path),
                    "--bind", f"{self.options.host}:{self.settings.router_port}",
                    "--domain", self.settings.domain,
                    "--logs", str(self.settings.home / "logs"),
                ),
                home,
                env,
            ),
        ]  # fmt: skip

    def _platform_hosts(self) -> list[str]:
        hosts = {self.settings.domain, "localhost", "127.0.0.1", self.options.host}
        return sorted(h for h in hosts if h not in ("0.0.0.0", "::"))

    def start(self) -> list[str]:
        """Adopt what a previous run left, start the services that are missing; say which."""
        (self.settings.run_dir / "platform").mkdir(parents=True, exist_ok=True, mode=0o700)
        self.supervisor.adopt()
        services = self.supervisor.services
        adopted = [name for name in services.specs if services.alive(name)]
        if not services.alive("router"):
            self._check_port_free()
        services.start_missing()
        return [
            f"{'adopted' if name in adopted else 'started'} {name} "
            f"(pid {services.running[name].row.pid})"
            for name in services.specs
        ]

    def _check_port_free(self) -> None:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.options.host, self.settings.router_port))
            except OSError as exc:
                raise UserError(
                    f"Cannot listen on {self.options.host}:{self.settings.router_port} "
                    f"({exc.strerror}); stop what uses it or pass --bind HOST:PORT."
                ) from None

    async def serve(self, stop: asyncio.Event) -> None:
        """Supervise until ``stop``; then stop the dynos, and the services last."""
        await self.supervisor.run(stop)
        await self.supervisor.stop_all(self.options.manager.grace)
        await self.supervisor.stop_services(grace=10)


def run_server(settings: Settings, options: ServerOptions, say=print) -> None:
    """Start (or adopt) the platform and run it until SIGINT or SIGTERM."""
    platform = Platform(settings, options)
    token_file, created = ensure_admin_token(settings, platform.store, settings.platform_url)
    for line in platform.start():
        say(f"corral: {line}")
    say(f"corral: dashboard and API at {settings.platform_url}/")
    say(f"corral: apps are served at {settings.app_url('<app>')}")
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
