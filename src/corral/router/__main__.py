"""Run the embedded router as its own process.

``python -m corral.router --table PATH --bind 127.0.0.1:8080 [--domain localhost]``;
with ``--certs DIR --https-bind :443`` it serves HTTPS too (see :mod:`corral.router.tls`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from corral.router.acme_challenge import Front
from corral.router.admission import raise_file_limit
from corral.router.applogs import AppLogs as _AppLogs
from corral.router.context import Timeouts
from corral.router.http1 import Limits
from corral.router.proxy import Router
from corral.router.table import TableFile
from corral.router.tls import CertIndex, CertLayout

__all__ = ["main", "run_router"]


def _parse_bind(bind: str) -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit():
        raise SystemExit(f"--bind must look like HOST:PORT (e.g. 127.0.0.1:8080), not {bind!r}.")
    return host.strip("[]") or "127.0.0.1", int(port)


class _StdoutLog:
    """Log lines to stdout, written together within 0.1 s: a busy router makes few write calls.

    Lines are held here rather than in ``sys.stdout``'s buffer, which ``PYTHONUNBUFFERED``
    (or a terminal) would turn into one system call per line.
    """

    def __init__(self) -> None:
        self._flush_scheduled = False
        self._pending: list[str] = []

    def __call__(self, app: str, line: str) -> None:
        self._pending.append(f"{app or '-'} router: {line}\n")
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_later(0.1, self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        if self._pending:
            sys.stdout.write("".join(self._pending))
            self._pending.clear()
        sys.stdout.flush()


@dataclass(frozen=True)
class HttpsOptions:
    """HTTPS beside HTTP: where the certificates are and where to listen."""

    certs: Path
    bind: str
    #: The port redirects name (default: the one bound).
    public_port: int | None = None


async def _serve(router: Router, host: str, port: int, https: Router | None = None,
                 https_at: tuple[str, int] = ("", 0)) -> None:  # fmt: skip
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    table = router.table_source
    # Told of a new table by inotify, not by a stat per request (which it falls back to).
    follow = "inotify" if isinstance(table, TableFile) and table.watch(loop) else "stat"
    bound = await router.start(host, port)
    if https is not None and https.front is not None:
        https_port = await https.start(*https_at, tls=https.front.certs.server_context())
        assert router.front is not None
        router.front.https_port = router.front.https_port or https_port
        print(f"router listening on https://{https_at[0]}:{https_port}", file=sys.stderr)
    # What start-up made lives as long as the process: out of the collector's way, a full
    # collection (which pauses every request in flight) walks only what requests make.
    gc.freeze()
    event_loop = type(loop).__module__.partition(".")[0]  # "uvloop" unless it is missing
    admission = router.admission
    assert admission is not None
    print(
        f"router listening on http://{host}:{bound} ({event_loop}; table by {follow}; file limit"
        f" {admission.file_limit}: up to {admission.most} client connections,"
        f" {admission.per_client or 'any number'} per client address)",
        file=sys.stderr,
        flush=True,
    )
    await stop.wait()
    if isinstance(table, TableFile):
        table.close()
    await router.close()
    if https is not None:
        await https.close()
    flush = getattr(router.log, "flush", None)
    if flush is not None:
        flush()
    sys.stdout.flush()


def run_router(
    table_path: str | Path,
    bind: str = "127.0.0.1:8080",
    domain: str | None = None,
    *,
    timeouts: Timeouts | None = None,
    limits: Limits | None = None,
    logs: Path | None = None,
    body_dir: Path | None = None,
    https: HttpsOptions | None = None,
) -> None:
    """Serve the route table at ``table_path`` on ``bind`` until SIGINT or SIGTERM.

    Request lines go to stdout, or with ``logs`` to each app's ``router.log`` there;
    request bodies too large for memory are spooled in ``body_dir`` (default: the system's
    temporary directory). The soft limit of open files is raised to the hard one first.
    """
    host, port = _parse_bind(bind)
    raise_file_limit()
    log = _AppLogs(Path(logs)) if logs else _StdoutLog()
    if body_dir is not None:
        body_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    table = TableFile(table_path, domain=domain)
    certs = None if https is None else CertIndex(CertLayout(https.certs))
    options = {
        "log": log,
        "timeouts": timeouts,
        "limits": limits,
        "body_dir": None if body_dir is None else str(body_dir),
    }
    http_front = None if certs is None else Front(certs, tls=False, https_port=None)
    if http_front is not None and https is not None:
        http_front.https_port = https.public_port
    router = Router(table, front=http_front, **options)  # type: ignore[arg-type]
    tls_router, tls_at = None, ("", 0)
    if certs is not None and https is not None:
        tls_at = _parse_bind(https.bind)
        tls_router = Router(table, proto="https", front=Front(certs, tls=True), **options)  # type: ignore[arg-type]
    serving = _serve(router, host, port, tls_router, tls_at)
    try:  # libuv's event loop roughly doubles what one router process can carry
        import uvloop
    except ImportError:
        asyncio.run(serving)
    else:
        uvloop.run(serving)


def main(argv: list[str] | None = None) -> None:
    """Command line entry point of ``python -m corral.router``."""
    parser = argparse.ArgumentParser(prog="python -m corral.router", description=__doc__)
    parser.add_argument("--table", required=True, help="route table JSON file to follow")
    parser.add_argument("--bind", default="127.0.0.1:8080", help="HOST:PORT to listen on")
    parser.add_argument("--domain", default=None, help="apps are <app>.<domain> (overrides table)")
    parser.add_argument("--request-timeout", type=float, default=30.0, help="seconds (H12)")
    parser.add_argument("--header-timeout", type=float, default=10.0, help="seconds")
    parser.add_argument(
        "--body-timeout", type=float, default=600.0, help="seconds to send a whole body (408)"
    )
    parser.add_argument(
        "--max-body", type=int, default=512, help="MB: the largest request body (413 beyond)"
    )
    parser.add_argument(
        "--client-connections",
        type=int,
        default=256,
        help="connections one client address may hold open (0: no cap)",
    )
    parser.add_argument("--body-dir", type=Path, help="where large request bodies are spooled")
    parser.add_argument("--logs", type=Path, help="write each app's lines to LOGS/<app>/router.log")
    parser.add_argument("--certs", type=Path, help="serve HTTPS with the certificates in CERTS")
    parser.add_argument("--https-bind", default="0.0.0.0:443", help="HOST:PORT for HTTPS")
    parser.add_argument("--https-port", type=int, help="the HTTPS port redirects name")
    args = parser.parse_args(argv)
    for flag, value in (("--max-body", args.max_body), ("--body-timeout", args.body_timeout)):
        if not value > 0:
            parser.error(f"{flag} is {value:g}; pass a number above 0.")
    if args.client_connections < 0:
        parser.error(f"--client-connections is {args.client_connections}; pass 0 or more.")
    timeouts = Timeouts(
        request=args.request_timeout, header=args.header_timeout, body=args.body_timeout
    )
    limits = Limits(max_body=args.max_body << 20, client_connections=args.client_connections)
    run_router(
        args.table,
        args.bind,
        args.domain,
        timeouts=timeouts,
        limits=limits,
        logs=args.logs,
        body_dir=args.body_dir,
        https=None
        if args.certs is None
        else HttpsOptions(args.certs, args.https_bind, args.https_port),
    )


if __name__ == "__main__":
    main()
