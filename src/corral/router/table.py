"""The route table: which app a Host belongs to and which web dynos serve it.

The supervisor writes it as a JSON file (atomically); the router only reads it, through
:class:`TableFile`, which reloads it when the file changes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from corral.files import atomic_write, file_stamp
from corral.router.watch import FileWatch, watch_file

__all__ = [
    "AppRoute",
    "Backend",
    "HostRoutes",
    "RouteTable",
    "TableFile",
    "load_route_table",
    "save_route_table",
    "split_host",
]


@dataclass(frozen=True)
class Backend:
    """One healthy web dyno the router may send requests to."""

    dyno: str
    host: str
    port: int


#: The platform's long-lived requests: an app's logs (``corral logs -t`` tails them) and
#: the dashboard's live log events; the streams service serves them without a thread each.
_STREAM_PATH = re.compile(rb"(?:/api/v1/apps/[^/?#]+/logs|/apps/[^/?#]+/logs/stream)(?:\?.*)?")


@dataclass(frozen=True)
class AppRoute:
    """How to serve one app: its healthy web backends and its modes."""

    app: str
    backends: tuple[Backend, ...] = ()
    maintenance: bool = False
    crashed: bool = False
    #: Whether the app's release has a ``web`` type at all: if not, no scaling brings one.
    has_web: bool = True
    #: Where the long-lived requests go (the platform's streams service), if anywhere else.
    streams: tuple[Backend, ...] = ()

    def for_request(self, method: bytes, target: bytes) -> AppRoute:
        """The route for one request: to the ``streams`` backends if it opens a stream."""
        if self.streams and method == b"GET" and _STREAM_PATH.fullmatch(target):
            return replace(self, backends=self.streams)
        return self


@dataclass(frozen=True)
class RouteTable:
    """Every app the router knows, reachable as ``<app>.<domain>`` or by a custom domain."""

    domain: str = "localhost"
    apps: dict[str, AppRoute] = field(default_factory=dict)
    #: Explicit host name -> app name (``corral domains:add``).
    custom_domains: dict[str, str] = field(default_factory=dict)

    def lookup(self, host_header: str) -> AppRoute | None:
        """The app a ``Host`` header names (any port ignored), or None if it names none."""
        host = split_host(host_header)
        app = self.custom_domains.get(host)
        if app is not None:
            return self.apps.get(app)
        suffix = "." + self.domain.lower()
        if host.endswith(suffix):
            name = host[: -len(suffix)]
            # Only one label deep: "a.b.localhost" is not app "a.b".
            if name and "." not in name:
                return self.apps.get(name)
        return None


class HostRoutes:
    """The route for a ``Host`` header in a source's current table, kept per table.

    Clients come and go but name the same few hosts, so a new connection rarely pays for
    a look-up; the kept routes are dropped whenever the source hands out a new table.
    """

    def __init__(self, table_source: Callable[[], RouteTable]) -> None:
        self.table_source = table_source
        self._table: RouteTable | None = None
        self._routes: dict[str, AppRoute | None] = {}

    def lookup(self, host: str) -> AppRoute | None:
        """The route for a ``Host`` header in the current table, or None if it names no app."""
        table = self.table_source()
        if table is not self._table:  # replaced when routing changes, never changed
            self._table = table
            self._routes = {}
        routes = self._routes
        try:
            return routes[host]
        except KeyError:
            pass
        route = table.lookup(host)
        if len(routes) >= 1024:  # any client can send new hosts: keep the cache bounded
            routes.clear()
        routes[host] = route
        return route


def split_host(host_header: str) -> str:
    """The lower-cased host name of a ``Host`` header, without port or trailing dot."""
    host = host_header.strip().lower()
    if host.startswith("["):  # IPv6 literal: "[::1]:8080"
        end = host.find("]")
        host = host[: end + 1] if end > 0 else host
    else:
        host = host.partition(":")[0]
    return host.rstrip(".")


def _backends_from_json(entries: Any) -> tuple[Backend, ...]:
    return tuple(
        Backend(dyno=str(b["dyno"]), host=str(b["host"]), port=int(b["port"])) for b in entries
    )


def _backends_to_json(backends: tuple[Backend, ...]) -> list[dict[str, Any]]:
    return [{"dyno": b.dyno, "host": b.host, "port": b.port} for b in backends]


def _table_from_json(data: dict[str, Any]) -> RouteTable:
    apps = {}
    for name, entry in data.get("apps", {}).items():
        apps[name] = AppRoute(
            app=name,
            backends=_backends_from_json(entry.get("backends", ())),
            maintenance=bool(entry.get("maintenance", False)),
            crashed=bool(entry.get("crashed", False)),
            has_web=bool(entry.get("has_web", True)),
            streams=_backends_from_json(entry.get("streams", ())),
        )
    domains = {split_host(h): str(a) for h, a in data.get("custom_domains", {}).items()}
    return RouteTable(
        domain=str(data.get("domain", "localhost")), apps=apps, custom_domains=domains
    )


def _table_to_json(table: RouteTable) -> dict[str, Any]:
    return {
        "domain": table.domain,
        "apps": {
            name: {
                "backends": _backends_to_json(route.backends),
                "maintenance": route.maintenance,
                "crashed": route.crashed,
                "has_web": route.has_web,
            }
            | ({"streams": _backends_to_json(route.streams)} if route.streams else {})
            for name, route in table.apps.items()
        },
        "custom_domains": dict(table.custom_domains),
    }


def load_route_table(path: str | os.PathLike[str]) -> RouteTable:
    """Read a route table from its JSON file."""
    with open(path, encoding="utf-8") as f:
        return _table_from_json(json.load(f))


def save_route_table(table: RouteTable, path: str | os.PathLike[str]) -> None:
    """Write ``table`` to ``path`` atomically, so a reader never sees half a file."""
    text = json.dumps(_table_to_json(table), indent=1, sort_keys=True) + "\n"
    atomic_write(Path(path), text, mode=0o600)


class TableFile:
    """A table source that re-reads the file as soon as it changes.

    Once :meth:`watch` runs on the router's loop, inotify says when the file changes, so
    a request costs nothing to learn the table is the same and the first one after a new
    table is written is routed by it; an idle router does nothing at all. Unwatched, every
    call checks the file's stamp (one ``stat``), or with ``interval`` > 0 at most that
    often. A missing or unreadable file keeps the last good table (an empty one at first),
    so a writer's hiccup never takes the router down; a broken one is parsed once, not at
    every request. ``domain``, when given, overrides the file's.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, domain: str | None = None, interval: float = 0.0
    ) -> None:
        self.path = Path(path)
        self._domain = domain
        self._interval = interval
        self._checked = float("-inf")
        #: The stamp of the file last read, whether it parsed or not.
        self._stamp: tuple[int, int, int] | None = None
        self._table = RouteTable(domain=domain or "localhost")
        #: Told of changes by inotify: the file is looked at only after one.
        self._watch: FileWatch | None = None
        self._stale = True

    def watch(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Follow the file with inotify on ``loop`` from now on; False where it cannot."""
        if self._watch is None:
            self._watch = watch_file(self.path, self._changed, self._unwatched)
            if self._watch is None:
                return False
            self._watch.start(loop)
        return True

    def close(self) -> None:
        """Stop following the file (calls check it again, as before :meth:`watch`)."""
        if self._watch is not None:
            self._watch.close()
            self._unwatched()

    def _changed(self) -> None:
        self._stale = True

    def _unwatched(self) -> None:
        self._watch = None
        self._stale = True

    def __call__(self) -> RouteTable:
        """The current table: read again if the file changed since the last call."""
        if self._watch is not None:
            if not self._stale:
                return self._table
            self._stale = False  # before the stat: a change during it is told again
        elif self._interval:
            now = time.monotonic()
            if now - self._checked < self._interval:
                return self._table
            self._checked = now
        stamp = file_stamp(self.path)
        if stamp is not None and stamp != self._stamp:
            self._refresh(stamp)
        return self._table

    def _refresh(self, stamp: tuple[int, int, int]) -> None:
        try:
            table = load_route_table(self.path)
        except OSError:  # unreadable (its mode, say): tried again at the next call
            return
        except (ValueError, KeyError, TypeError):
            self._stamp = stamp  # broken: not parsed again at every request, only once changed
            return
        self._stamp = stamp
        self._table = replace(table, domain=self._domain) if self._domain else table
