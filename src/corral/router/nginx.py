"""The nginx router: a small watcher that owns a real nginx and keeps it serving the route table.

``python -m corral.router.nginx --table PATH --bind HOST:PORT --prefix DIR [...]``

It is the router service when ``corral server --router nginx`` runs: supervised like the
embedded router (same shim, adopted across restarts; nginx is its child, in its process
group). It writes ``nginx.conf`` from the table (:mod:`corral.router.nginx_conf`), runs
nginx with ``-p DIR`` so nothing outside ``DIR`` is touched (not ``/etc/nginx``, not the
host's own nginx), and at each change of the table writes the new configuration beside
the live one, checks it with ``nginx -t``, and only then puts it in place and reloads
nginx gracefully (SIGHUP): a configuration nginx refuses never replaces a good one, and
the reason is printed (to the platform's log). nginx sends each request's record to the
watcher's socket, which writes the app's ``router.log`` (:mod:`corral.router.nginx_log`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import psutil

from corral.files import file_stamp
from corral.router.admission import raise_file_limit
from corral.router.applogs import AppLogs
from corral.router.context import Timeouts
from corral.router.nginx_conf import NginxOptions, TlsSite, render, upstream_dynos
from corral.router.nginx_log import record_line
from corral.router.table import RouteTable, TableFile
from corral.router.tls import CertLayout, load_index, self_signed

__all__ = ["NGINX_PACKAGE", "NginxRouter", "find_nginx", "is_nginx_router", "main"]

#: The Debian package that provides nginx, named when it is missing.
NGINX_PACKAGE = "nginx"
#: Seconds between two looks at the route table (a ``stat``).
_POLL = 0.05
#: Seconds nginx's old workers are given to finish their requests when the router stops.
_QUIT_GRACE = 10.0


def find_nginx() -> str | None:
    """The nginx binary, or None: ``$CORRAL_NGINX`` if set, else ``nginx`` on ``PATH`` (and
    in ``/usr/sbin``, which a non-root ``PATH`` often lacks)."""
    chosen = os.environ.get("CORRAL_NGINX")
    if chosen:
        return shutil.which(chosen)
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    return shutil.which("nginx", path=path)


def is_nginx_router(pid: int) -> bool:
    """Whether process ``pid`` (a router service's shim) runs this watcher, not the embedded
    router: a platform started with the other ``--router`` must not adopt it unawares."""
    try:
        process = psutil.Process(pid)
        family = [process, *process.children(recursive=True)]
    except psutil.Error:
        return False
    for member in family:
        with contextlib.suppress(psutil.Error):
            if "corral.router.nginx" in member.cmdline():
                return True
    return False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    # nginx must not outlive a watcher that was killed: it would hold the port.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _Records(asyncio.DatagramProtocol):
    """nginx's access log records, each one an app's ``router.log`` line."""

    def __init__(self, router: NginxRouter) -> None:
        self.router = router

    def datagram_received(self, data: bytes, addr: object) -> None:
        made = record_line(data, self.router.dynos)
        if made is not None:
            self.router.logs(*made)


class NginxRouter:
    """Keeps one nginx serving the current route table, reloading it at each change."""

    def __init__(
        self,
        nginx: str,
        table: TableFile,
        options: NginxOptions,
        logs: AppLogs | None,
        certs: CertLayout | None = None,
    ) -> None:
        self.nginx = nginx
        self.table_source = table
        self.options = options
        self.logs = logs or AppLogs(options.prefix / "logs")
        self.conf = options.prefix / "nginx.conf"
        #: ``host:port`` -> dyno, of this table and the last (old workers finish on it).
        self.dynos: dict[str, str] = {}
        self._last_dynos: dict[str, str] = {}
        self._applied: RouteTable | None = None
        self._text = ""
        self.master: subprocess.Popen[bytes] | None = None
        #: ``--certs``: the certificate service's files, followed like the table.
        self.certs = certs
        self._certs_stamp: tuple[int, int, int] | None = None

    def _say(self, line: str) -> None:
        print(line, flush=True)

    def check(self, text: str) -> str | None:
        """Write ``text`` beside the live configuration and have nginx check it: None if
        good (it is left as ``nginx.conf.new``), else nginx's reason."""
        candidate = self.conf.with_name("nginx.conf.new")
        candidate.write_text(text)
        checked = subprocess.run(
            [self.nginx, "-t", "-q", "-e", "stderr", "-p", str(self.options.prefix),
             "-c", str(candidate)],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if checked.returncode == 0:
            return None
        candidate.unlink(missing_ok=True)
        lines = [line for line in checked.stderr.splitlines() if "test failed" not in line]
        return (lines[-1] if lines else checked.stderr.strip()) or f"exit {checked.returncode}"

    def apply(self, table: RouteTable, *, reload: bool = False) -> bool:
        """Serve ``table``: check its configuration, put it in place, reload nginx; False
        (the running configuration kept, the reason printed) if nginx refuses it.

        With ``reload``, nginx reloads even if the text is the same: a certificate file
        it names was replaced (nginx reads them only when it loads its configuration).
        """
        text = render(table, self.options)
        if text == self._text and not reload:
            self._applied = table
            return True
        began = time.monotonic()
        refused = self.check(text)
        if refused is not None:
            self._applied = table  # not again until the table changes
            if self.master is None:  # nothing serves yet: nothing to keep
                raise SystemExit(f"nginx refused corral's configuration: {refused}")
            self._say(
                f"Kept the running nginx configuration: nginx -t refused the new one ({refused})"
            )
            return False
        os.replace(self.conf.with_name("nginx.conf.new"), self.conf)
        self._text = text
        self._applied = table
        current = upstream_dynos(table)
        self.dynos = {**self._last_dynos, **current}
        self._last_dynos = current
        if self.master is not None and self.master.poll() is None:
            self._reload(began, time.monotonic())
        return True

    def _workers(self) -> dict[int, str]:
        assert self.master is not None
        try:
            children = psutil.Process(self.master.pid).children()
        except psutil.NoSuchProcess:
            return {}
        found = {}
        for child in children:
            with contextlib.suppress(psutil.Error):
                found[child.pid] = " ".join(child.cmdline()).strip()
        return found

    def _reload(self, began: float, checked: float) -> None:
        """SIGHUP nginx, then wait (at most 5 s) until new workers serve and the old
        ones only finish what they had: the table is in effect when this returns."""
        assert self.master is not None
        old = set(self._workers())
        self.master.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            workers = self._workers()
            fresh = [p for p, cmd in workers.items() if p not in old and cmd.endswith("process")]
            stale = [p for p, cmd in workers.items() if p in old and cmd.endswith("worker process")]
            if len(fresh) >= self.options.workers and not stale:
                break
            time.sleep(0.002)
        now = time.monotonic()
        self._say(
            f"Reloaded nginx for the new route table: checked in {(checked - began) * 1000:.0f}"
            f" ms, in effect {(now - checked) * 1000:.0f} ms later"
        )

    def start(self) -> None:
        """Start nginx on the current table (it must pass ``nginx -t``)."""
        self._text = ""
        self._follow_certs()
        self.apply(self.table_source())
        self.master = subprocess.Popen(
            [self.nginx, "-e", "stderr", "-p", str(self.options.prefix), "-c", str(self.conf)],
            stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
        )  # fmt: skip
        # a SIGHUP before nginx has set its handlers would end it: wait for its workers,
        # which it starts only after (at most 10 s; a master that exits is seen by run())
        deadline = time.monotonic() + 10
        while self.master.poll() is None and time.monotonic() < deadline:
            workers = self._workers().values()
            if sum(cmd.endswith("worker process") for cmd in workers) >= self.options.workers:
                break
            time.sleep(0.005)

    def follow(self) -> None:
        """Apply the table (and the certificates) if they changed since the last look."""
        table = self.table_source()
        certs = self._follow_certs()
        if table is not self._applied or certs:
            self.apply(table, reload=certs)

    def _follow_certs(self) -> bool:
        """Whether the certificate index changed: the hosts served over HTTPS are then
        those with a certificate in it (and a PEM file on disk)."""
        if self.certs is None:
            return False
        stamp = file_stamp(self.certs.index)
        if stamp == self._certs_stamp:
            return False
        self._certs_stamp = stamp
        try:
            entries = load_index(self.certs)
        except (OSError, ValueError, KeyError, TypeError):
            return False  # half a file or none: the last good one serves on
        sites = tuple(
            TlsSite(host, pem, pem, hsts=entry.hsts)
            for host, entry in sorted(entries.items())
            if (pem := self.certs.host_pem(host)).is_file()
        )
        self.options = replace(self.options, tls=sites)
        return True

    async def run(self) -> int:
        """Serve until SIGTERM or SIGINT (0), or until nginx exits on its own (1)."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        sock = _record_socket(self.options.log_socket)
        transport, _ = await loop.create_datagram_endpoint(lambda: _Records(self), sock=sock)
        try:
            self.start()
            self._say(
                f"router (nginx, pid {self.master.pid if self.master else '?'}) listening on "
                f"http://{self.options.host}:{self.options.port}"
            )
            while not stop.is_set() and self.master is not None and self.master.poll() is None:
                self.follow()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), _POLL)
        finally:
            code = await self._stop()
            await asyncio.sleep(0.05)  # the last records of the old workers
            transport.close()
            self.logs.flush()
            self.options.log_socket.unlink(missing_ok=True)
            if self.options.log_socket.parent != self.options.prefix:
                with contextlib.suppress(OSError):
                    self.options.log_socket.parent.rmdir()
        return 0 if stop.is_set() else (code or 1)

    async def _stop(self) -> int | None:
        master = self.master
        if master is None:
            return None
        if master.poll() is None:
            master.send_signal(signal.SIGQUIT)  # graceful: requests in flight finish
            deadline = time.monotonic() + _QUIT_GRACE
            while master.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if master.poll() is None:
                master.kill()
        code = master.wait()
        if code:
            self._say(f"nginx exited with status {code}")
        return code


#: The longest path a Unix socket may have (``sun_path`` holds 108 bytes, with its NUL).
_SOCKET_PATH_MAX = 107


def _record_socket_path(prefix: Path) -> Path:
    """Where nginx sends its records: in ``prefix``, or in a private directory of its own
    under ``/tmp`` when the home is too deep for a socket's path."""
    path = prefix / "records.sock"
    if len(os.fsencode(path)) <= _SOCKET_PATH_MAX:
        return path
    return Path(tempfile.mkdtemp(prefix="corral-nginx-")) / "records.sock"  # mode 0700


def _record_socket(path: Path) -> socket.socket:
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    with contextlib.suppress(OSError):  # a burst of requests must not drop lines
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(str(path))
    sock.setblocking(False)
    return sock


def _https(certs: Path, bind: str, prefix: Path) -> dict:
    """What HTTPS adds to the options: where, a fallback certificate, the challenges."""
    fallback = prefix / "fallback.pem"
    if not fallback.exists():  # for names without a certificate of their own
        cert, key = self_signed(["corral fallback"])
        fallback.touch(mode=0o600)
        fallback.write_bytes(key + cert)
    layout = CertLayout(certs)
    return {"https": _parse_bind(bind), "fallback": fallback, "challenges": layout.challenges}


def _parse_bind(bind: str) -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit():
        raise SystemExit(f"--bind must look like HOST:PORT (e.g. 127.0.0.1:8080), not {bind!r}.")
    return host.strip("[]") or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> None:
    """Command line entry point of ``python -m corral.router.nginx``."""
    parser = argparse.ArgumentParser(prog="python -m corral.router.nginx", description=__doc__)
    parser.add_argument("--table", required=True, help="route table JSON file to follow")
    parser.add_argument("--bind", default="127.0.0.1:8080", help="HOST:PORT to listen on")
    parser.add_argument("--prefix", required=True, type=Path, help="nginx's own directory")
    parser.add_argument("--domain", default=None, help="apps are <app>.<domain> (overrides table)")
    parser.add_argument("--logs", type=Path, help="write each app's lines to LOGS/<app>/router.log")
    parser.add_argument("--max-body", type=int, default=512, help="MB: the largest request body")
    parser.add_argument("--client-connections", type=int, default=256, help="per address (0: any)")
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 4))
    parser.add_argument("--request-timeout", type=float, default=30.0, help="seconds (H12)")
    parser.add_argument("--certs", type=Path, help="serve HTTPS with the certificates there")
    parser.add_argument("--https-bind", default="0.0.0.0:443", help="HOST:PORT for HTTPS")
    args = parser.parse_args(argv)
    nginx = find_nginx()
    if nginx is None:
        raise SystemExit(f"nginx is not installed: install Debian's {NGINX_PACKAGE} package.")
    host, port = _parse_bind(args.bind)
    prefix = args.prefix.resolve()
    prefix.mkdir(parents=True, exist_ok=True, mode=0o700)
    options = NginxOptions(
        host=host,
        port=port,
        prefix=prefix,
        log_socket=_record_socket_path(prefix),
        workers=max(1, args.workers),
        max_body_mb=args.max_body,
        client_connections=args.client_connections,
        timeouts=replace(Timeouts(), request=args.request_timeout),
        root=os.geteuid() == 0,
        **(_https(args.certs, args.https_bind, prefix) if args.certs else {}),
    )
    raise_file_limit()  # nginx inherits it: its workers hold two descriptors per request
    table = TableFile(args.table, domain=args.domain, interval=0)
    certs = CertLayout(args.certs) if args.certs else None
    router = NginxRouter(nginx, table, options, AppLogs(args.logs) if args.logs else None, certs)
    sys.exit(asyncio.run(router.run()))


if __name__ == "__main__":
    main()
