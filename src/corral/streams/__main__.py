"""``python -m corral.streams --bind 127.0.0.1:PORT``: the streams service, as the supervisor
runs it (the home, domain and port come in the environment, read by :meth:`Settings.load`)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from corral.config import Settings
from corral.cookies import SessionReader
from corral.store import Store
from corral.streams.service import StreamsServer, serve
from corral.streams.views import ViewContext


async def _main(host: str, port: int) -> None:
    settings = Settings.load()
    ctx = ViewContext(Store.for_settings(settings), settings.logs_dir, SessionReader(settings.home))
    server = await serve(StreamsServer(ctx), host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bound = server.sockets[0].getsockname()[1]
    print(f"streams listening on http://{host}:{bound}", file=sys.stderr, flush=True)
    await stop.wait()
    server.close()  # open streams are cancelled as the loop ends


def main(argv: list[str] | None = None) -> None:
    """Command line entry point of ``python -m corral.streams``."""
    parser = argparse.ArgumentParser(prog="python -m corral.streams", description=__doc__)
    parser.add_argument("--bind", default="127.0.0.1:0", help="HOST:PORT to listen on")
    args = parser.parse_args(argv)
    host, _, port = args.bind.rpartition(":")
    try:  # libuv's event loop, as the router uses
        import uvloop
    except ImportError:
        asyncio.run(_main(host or "127.0.0.1", int(port)))
    else:
        uvloop.run(_main(host or "127.0.0.1", int(port)))


if __name__ == "__main__":
    main()
