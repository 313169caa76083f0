"""``corral server``: the whole platform on one machine, started by one command.

The server process runs the supervisor. The API (gunicorn serving
:mod:`corral.api.wsgi`) and the router run as processes of their own, held by the same
shim as dynos, so a ``kill -9`` of the server leaves them serving and the next start
adopts them. The API is reached through the router at the platform's own host names
(``localhost``, ``127.0.0.1``), so one port serves apps, the API and git.

One server runs per home (:mod:`corral.homelock`). A start either serves or changes
nothing: the port is checked before anything starts, app dynos wait until the API has
answered through the router, a start that fails stops the services it started, and the
admin token reaches its file and the CLI's credentials only once the platform serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

from corral.addons.servers import runs_as_others, service_specs
from corral.config import Settings
from corral.credentials import Credentials, credentials_path
from corral.errors import UserError
from corral.files import atomic_write
from corral.homelock import lock_home
from corral.https import HttpsOptions, certs_service, check_listen, router_flags
from corral.router.nginx import NGINX_PACKAGE, find_nginx, is_nginx_router
from corral.runtime import confinement
from corral.runtime.firewall import detect as detect_firewall
from corral.runtime.logs import recent
from corral.runtime.services import PORT, ServiceSpec
from corral.runtime.supervisor import Supervisor, SupervisorOptions
from corral.runtime.units import Running
from corral.store import Store
from corral.store.names import PLATFORM_APP

#: Seconds a write of the supervisor waits for the store's lock before it is put off to a
#: later tick: the loop stalls no longer than this while another process holds the lock.
SUPERVISOR_BUSY_TIMEOUT = 1.0


@dataclass(frozen=True)
class ServerOptions:
    """What ``corral server`` was asked for beyond its settings (domain and port are there)."""

    host: str = "127.0.0.1"
    workers: int = 2
    manager: SupervisorOptions = field(default_factory=SupervisorOptions)
    #: Run each dyno in a cgroup with its memory, pids and CPU limits, where the host can.
    kernel_limits: bool = True
    #: As root, run each app as a system user of its own (:mod:`corral.appusers`).
    isolation: bool = True
    #: The largest request body the router takes, in MB (413 beyond).
    max_body_mb: int = 512
    #: Connections one client address may hold open at the router (0: no cap).
    client_connections: int = 256
    #: Which router serves: ``embedded`` (corral's own) or ``nginx`` (a real nginx it drives).
    router: str = "embedded"
    #: Serve HTTPS too, with certificates from ACME (None: plain HTTP only).
    https: HttpsOptions | None = None


@dataclass(frozen=True)
class AdminToken:
    """The admin token a first start created: in the store at once, on disk once serving."""

    id: str
    secret: str


class Platform:
    """The server process: the platform's services and every app's dynos, one supervisor."""

    def __init__(self, settings: Settings, options: ServerOptions) -> None:
        if options.router == "nginx" and find_nginx() is None:
            raise UserError(
                f"--router nginx needs nginx, which is not installed: install Debian's "
                f"{NGINX_PACKAGE} package (apt-get install {NGINX_PACKAGE}), or leave out "
                "--router."
            )
        isolated, self.isolation_note = confinement.isolation(settings, options.isolation)
        cgroups, self.limits_note = (
            confinement.kernel_limits(settings) if options.kernel_limits else (None, "off")
        )
        settings = replace(settings, isolation=isolated, kernel_limits=cgroups is not None)
        firewall, self.network_note = (
            detect_firewall(settings) if isolated else (None, "off: apps are not isolated")
        )
        self.settings = settings
        self.options = options
        self.store = Store.for_settings(settings, busy_timeout=SUPERVISOR_BUSY_TIMEOUT, wake=False)
        self.supervisor = Supervisor(
            settings,
            self.store,
            options.manager,
            services=self._services(),
            platform_hosts=self._platform_hosts(),
            cgroups=cgroups,
            firewall=firewall,
        )
        # the add-on servers (PostgreSQL, Redis), from when an add-on has made them
        self.supervisor.services.follow(lambda: service_specs(settings))
        #: The services this start started (not adopted): what a failed start stops.
        self.started: list[str] = []
        self.new_token: AdminToken | None = None

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
            CORRAL_ISOLATION="1" if self.settings.isolation else "0",
            CORRAL_KERNEL_LIMITS="1" if self.settings.kernel_limits else "0",
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
                    "--logger-class", "corral.api.accesslog.RedactingLogger",
                ),
                home,
                env,
                listens=True,
                # builds run in the API's workers: those the store calls unfinished died with it
                before_start=self.store.fail_unfinished_builds,
            ),
            ServiceSpec(
                # log tails and the dashboard's live logs, off the API's threads
                "streams",
                (python, "-m", "corral.streams", "--bind", f"127.0.0.1:{PORT}"),
                home,
                env,
                listens=True,
            ),
            ServiceSpec("router", self._router_command(), home, env),
            *certs_service(self.options.https, python, env, home),
        ]  # fmt: skip

    def _router_command(self) -> tuple[str, ...]:
        """The router service: the embedded router, or the watcher that drives nginx."""
        settings, options = self.settings, self.options
        nginx = options.router == "nginx"
        return (
            sys.executable, "-m", "corral.router.nginx" if nginx else "corral.router",
            "--table", str(settings.routes_path),
            "--bind", f"{options.host}:{settings.router_port}",
            "--domain", settings.domain,
            "--logs", str(settings.home / "logs"),
            "--max-body", str(options.max_body_mb),
            "--client-connections", str(options.client_connections),
            *(("--prefix", str(settings.run_dir / "nginx")) if nginx
              else ("--body-dir", str(settings.run_dir / "router-bodies"))),
            *router_flags(options.https, settings.certs_dir),
        )  # fmt: skip

    def _platform_hosts(self) -> list[str]:
        hosts = {self.settings.domain, "localhost", "127.0.0.1", self.options.host}
        return sorted(h for h in hosts if h not in ("0.0.0.0", "::"))

    @property
    def token_file(self) -> Path:
        """The admin token, readable by the owner only (the first start writes it)."""
        return self.settings.home / "admin-token"

    def start(self) -> list[str]:
        """Adopt what a previous run left, start the services that are missing; say which.

        The router's port is checked before anything starts. A first start creates the
        admin token in the store here, so the API knows it from its first request; it is
        written to disk only by :meth:`publish_token`, once the platform serves.
        """
        (self.settings.run_dir / "platform").mkdir(parents=True, exist_ok=True, mode=0o700)
        self.supervisor.adopt()
        services = self.supervisor.services
        self._check_port(adopted=services.running["router"] if services.alive("router") else None)
        if not self.token_file.exists():
            token, secret = self.store.create_token("admin")
            self.new_token = AdminToken(token.id, secret)
        self.started = services.start_missing()
        return [
            f"{'started' if name in self.started else 'adopted'} {name} "
            f"(pid {services.running[name].row.pid})"
            for name in services.specs
        ]

    def _check_port(self, adopted: Running | None) -> None:
        # Before anything starts: the router this start would run must be able to listen,
        # and one adopted from the last run must be the one listening there, of the kind asked.
        kind = self.options.router
        if adopted is not None and is_nginx_router(adopted.row.pid or 0) != (kind == "nginx"):
            other = "embedded" if kind == "nginx" else "nginx"
            raise UserError(
                f"The router the last corral server left running (pid {adopted.row.pid}) is "
                f"the {other} one; pass --router {other} as it was started, or stop it first."
            )
        https = self.options.https
        if https is not None and adopted is None:
            check_listen(https.host, https.port, "--https-bind")
        where = f"{self.options.host}:{self.settings.router_port}"
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.options.host, self.settings.router_port))
            except OSError as exc:
                if adopted is None:
                    raise UserError(
                        f"Cannot listen on {where} ({exc.strerror}); "
                        "stop what uses it or pass --bind HOST:PORT."
                    ) from None
                return
        if adopted is not None:
            raise UserError(
                f"The router the last corral server left running (pid {adopted.row.pid}) "
                f"does not listen on {where}; pass the --bind it was started with, "
                "or stop it first."
            )

    async def boot(self, stop: asyncio.Event) -> bool:
        """Keep the services going until the API answers through the router (True).

        False if ``stop`` is set first; a :class:`UserError` saying why if a service this
        start started exits, or nothing answers within the boot timeout. App dynos are
        not started yet: a start that fails leaves none behind.
        """
        services = self.supervisor.services
        timeout = self.options.manager.boot_timeout
        # from the first start: a service's own boot timeout (R10) ends no earlier than this
        began = [services.running[n].started for n in self.started if n in services.running]
        deadline = min(began, default=time.monotonic()) + timeout
        host = "127.0.0.1" if self.options.host in ("", "0.0.0.0", "::") else self.options.host
        url = f"http://{f'[{host}]' if ':' in host else host}:{self.settings.router_port}"
        async with httpx.AsyncClient(base_url=url, timeout=1) as client:
            while not stop.is_set():
                if await _answers(client):
                    return True
                if time.monotonic() > deadline:
                    raise UserError(
                        f"The platform did not answer at {url} within {timeout:g}s; "
                        f"fix what its last lines say, or pass a longer --boot-timeout.\n"
                        + self._last_lines(None)
                    )
                for name in self.started:
                    if not services.alive(name):
                        raise UserError(
                            f"The platform could not start: its {name} service exited before "
                            f"it served; fix what its last lines say and start again.\n"
                            + self._last_lines(name)
                        )
                # an adopted service that died meanwhile is restarted: this start's too
                self.started += [n for n in services.tick() if n not in self.started]
                self.supervisor.write_routes()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.options.manager.tick)
        return False

    def _last_lines(self, service: str | None) -> str:
        lines = recent(self.settings.logs_dir(PLATFORM_APP), 10, dyno=service)
        return "\n".join(f"  {line}" for line in lines)

    def publish_token(self) -> bool:
        """Write the admin token a first start created (0600) and the CLI's credentials."""
        if self.new_token is None:
            return False
        atomic_write(self.token_file, self.new_token.secret + "\n", mode=0o600)
        Credentials(server=self.settings.platform_url, token=self.new_token.secret).save()
        return True

    async def abandon(self) -> None:
        """Undo a start that failed: stop the services it started, revoke the token it made."""
        # a short grace: nothing it started has served a request yet
        await self.supervisor.services.stop(self.started, grace=3)
        await self.supervisor.units.drained()
        if self.new_token is not None:
            self.token_file.unlink(missing_ok=True)  # it did not exist before this start
            self.store.delete_token(self.new_token.id)
            self.new_token = None

    async def serve(self, stop: asyncio.Event) -> None:
        """Supervise until ``stop``; then stop the dynos, and the services last."""
        try:
            await self.supervisor.run(stop)
        finally:  # even after a fault: a server that exits leaves nothing running
            try:
                await self.supervisor.stop_all(self.options.manager.grace)
            finally:
                await self.supervisor.stop_services(grace=10)


async def _answers(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/api/v1/health")).status_code == 200
    except httpx.TransportError:
        return False


def run_server(settings: Settings, options: ServerOptions, say=print) -> None:
    """Start (or adopt) the platform and run it until SIGINT or SIGTERM.

    One server per home (:mod:`corral.homelock`), and a start that fails changes nothing:
    what it started is stopped, and the token and credentials are written only once the
    platform serves. A signal at any point from here on stops the platform cleanly.
    """
    # Recorded until the loop takes over: a stop asked for while starting is still a stop.
    asked: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _: asked.append(signum)) for sig in _STOP}
    # What the platform writes (store, tokens, routes, logs, slugs) is for its user only;
    # apps' own processes get the usual 022 back (see the shim).
    os.umask(0o077)
    try:
        with lock_home(settings.home, settings.run_dir, settings.platform_url):
            platform = Platform(settings, options)
            # PostgreSQL and Redis run as users of their own, who pass through the home too
            passable = platform.settings.isolation or runs_as_others(settings)
            confinement.keep_private(settings.home, passable=passable)
            try:
                asyncio.run(_main(platform, say, asked))
            except OSError as exc:
                raise UserError(f"The platform could not start ({exc}).") from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    say("corral: stopped")


#: The signals that stop the platform.
_STOP = (signal.SIGINT, signal.SIGTERM)


async def _main(platform: Platform, say, asked: list[int]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in _STOP:
        loop.add_signal_handler(sig, stop.set)
    if asked:
        stop.set()
    try:
        for line in platform.start():
            say(f"corral: {line}")
        served = await platform.boot(stop)
        created = served and platform.publish_token()
    except BaseException:
        await platform.abandon()
        raise
    if not served:  # stopped while starting: what it started, then what it adopted
        await platform.abandon()
        await platform.serve(stop)
        return
    settings = platform.settings
    say(f"corral: dashboard and API at {settings.platform_url}/")
    say(f"corral: apps are served at {settings.app_url('<app>')}")
    say(f"corral: kernel limits {platform.limits_note}")
    say(f"corral: {platform.isolation_note}")
    if platform.settings.isolation:
        say(f"corral: network isolation between apps {platform.network_note}")
    if created:
        say(f"corral: admin token written to {platform.token_file} (and to {credentials_path()})")
    else:
        say(f"corral: admin token in {platform.token_file}")
    say("corral: press Ctrl-C to stop")
    await platform.serve(stop)
