"""Run the embedded router as its own process.

``python -m corral.router --table PATH --bind 127.0.0.1:8080 [--domain localhost]``
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from corral.router.proxy import Router, Timeouts
from corral.router.table import TableFile

__all__ = ["main", "run_router"]


def _parse_bind(bind: str) -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit():
        raise SystemExit(f"--bind must look like HOST:PORT (e.g. 127.0.0.1:8080), not {bind!r}.")
    return host.strip("[]") or "127.0.0.1", int(port)


class _StdoutLog:
    """Log lines to stdout, flushed within 0.1 s: a busy router makes few write calls."""

    def __init__(self) -> None:
        self._flush_scheduled = False

    def __call__(self, app: str, line: str) -> None:
        sys.stdout.write(f"{app or '-'} router: {line}\n")
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_later(0.1, self.flush)

    def flush(self) -> None:
        self._flush_scheduled = False
        sys.stdout.flush()


async def _serve(router: Router, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bound = await router.start(host, port)
    print(f"router listening on http://{host}:{bound}", file=sys.stderr, flush=True)
    await stop.wait()
    await router.close()
    sys.stdout.flush()


def run_router(
    table_path: str | Path,
    bind: str = "127.0.0.1:8080",
    domain: str | None = None,
    *,
    timeouts: Timeouts | None = None,
) -> None:
    """Serve the route table at ``table_path`` on ``bind`` until SIGINT or SIGTERM."""
    host, port = _parse_bind(bind)
    router = Router(TableFile(table_path, domain=domain), log=_StdoutLog(), timeouts=timeouts)
    try:  # libuv's event loop roughly doubles what one router process can carry
        import uvloop
    except ImportError:
        asyncio.run(_serve(router, host, port))
    else:
        uvloop.run(_serve(router, host, port))


def main(argv: list[str] | None = None) -> None:
    """Command line entry point of ``python -m corral.router``."""
    parser = argparse.ArgumentParser(prog="python -m corral.router", description=__doc__)
    parser.add_argument("--table", required=True, help="route table JSON file to follow")
    parser.add_argument("--bind", default="127.0.0.1:8080", help="HOST:PORT to listen on")
    parser.add_argument("--domain", default=None, help="apps are <app>.<domain> (overrides table)")
    parser.add_argument("--request-timeout", type=float, default=30.0, help="seconds (H12)")
    parser.add_argument("--header-timeout", type=float, default=10.0, help="seconds")
    args = parser.parse_args(argv)
    timeouts = Timeouts(request=args.request_timeout, header=args.header_timeout)
    run_router(args.table, args.bind, args.domain, timeouts=timeouts)


if __name__ == "__main__":
    main()
