"""The route table and round-robin balancing, as plain values (no sockets)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

import corral.router.table as table_module
from corral.router.forward import BACKEND_CLOSED, CLOSE, KEEP, REFUSED, TIMED_OUT
from corral.router.pages import FAILURES, logfmt, render_page
from corral.router.pool import RoundRobin
from corral.router.table import (
    AppRoute,
    Backend,
    HostRoutes,
    RouteTable,
    TableFile,
    load_route_table,
    save_route_table,
)
from support.wait import wait_until

WEB1 = Backend("web.1", "127.0.0.1", 5001)
WEB2 = Backend("web.2", "127.0.0.1", 5002)
WEB3 = Backend("web.3", "127.0.0.1", 5003)


def _table() -> RouteTable:
    return RouteTable(
        domain="corral.test",
        apps={"hello": AppRoute("hello", (WEB1, WEB2)), "blog": AppRoute("blog", maintenance=True)},
        custom_domains={"www.example.com": "hello"},
    )


def test_lookup_by_app_subdomain_ignores_port_case_and_trailing_dot() -> None:
    table = _table()
    for host in ("hello.corral.test", "HELLO.Corral.Test:8080", "hello.corral.test."):
        route = table.lookup(host)
        assert route is not None and route.app == "hello"


def test_lookup_by_custom_domain() -> None:
    route = _table().lookup("www.example.com:443")
    assert route is not None and route.app == "hello"


def test_lookup_of_unknown_hosts_is_none() -> None:
    table = _table()
    for host in ("nope.corral.test", "corral.test", "a.hello.corral.test", "hello.other", ""):
        assert table.lookup(host) is None


def test_lookup_handles_ipv6_literal_hosts() -> None:
    table = RouteTable(domain="localhost", apps={}, custom_domains={"[::1]": "hello"})
    table = RouteTable(table.domain, {"hello": AppRoute("hello")}, table.custom_domains)
    route = table.lookup("[::1]:8080")
    assert route is not None and route.app == "hello"


def test_save_then_load_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "routes.json"
    save_route_table(_table(), path)
    assert load_route_table(path) == _table()
    assert [p.name for p in tmp_path.iterdir()] == ["routes.json"]  # no temp file left behind


def test_table_file_reloads_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "routes.json"
    source = TableFile(path, interval=0.0)
    assert source().apps == {}  # no file yet: an empty table, not an error
    save_route_table(_table(), path)
    assert source().lookup("hello.corral.test") is not None
    save_route_table(RouteTable(domain="corral.test"), path)
    assert source().lookup("hello.corral.test") is None


def test_table_file_sees_a_replaced_table_at_the_next_call(tmp_path: Path) -> None:
    # No interval by default: a deploy's cutover is routed by the very next request.
    path = tmp_path / "routes.json"
    source = TableFile(path)
    for n in range(20):
        backends = (Backend("web.1", "127.0.0.1", 5000 + n),)
        save_route_table(RouteTable("corral.test", {"hello": AppRoute("hello", backends)}), path)
        route = source().lookup("hello.corral.test")
        assert route is not None and route.backends == backends


def test_table_file_parses_a_broken_file_once_and_its_fix_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "routes.json"
    save_route_table(_table(), path)
    source = TableFile(path)
    assert source().lookup("hello.corral.test") is not None
    path.write_text("{not json")
    reads = []
    real_load = table_module.load_route_table
    monkeypatch.setattr(table_module, "load_route_table", lambda p: reads.append(p) or real_load(p))
    for _ in range(50):  # one read of the broken file, not one per request
        assert source().lookup("hello.corral.test") is not None
    assert len(reads) == 1
    save_route_table(RouteTable(domain="corral.test"), path)
    assert source().lookup("hello.corral.test") is None


def test_a_watched_table_file_is_looked_at_only_after_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "routes.json"
    save_route_table(RouteTable(domain="corral.test"), path)
    source = TableFile(path)
    stats = []
    real_stamp = table_module.file_stamp
    monkeypatch.setattr(table_module, "file_stamp", lambda p: stats.append(p) or real_stamp(p))
    loop = asyncio.new_event_loop()
    try:
        assert source.watch(loop), "inotify is there on Linux"
        for _ in range(50):  # requests while nothing changes: no system call at all
            assert source().apps == {}
        assert len(stats) == 1
        for n in range(5):
            backends = (Backend("web.1", "127.0.0.1", 5000 + n),)
            apps = {"hello": AppRoute("hello", backends)}
            save_route_table(RouteTable("corral.test", apps), path)
            loop.run_until_complete(asyncio.sleep(0))  # the router's loop hears of it
            route = source().lookup("hello.corral.test")
            assert route is not None and route.backends == backends
        assert len(stats) <= 1 + 5
    finally:
        source.close()
        loop.close()
    save_route_table(RouteTable(domain="corral.test"), path)
    assert source().apps == {}  # unwatched again: looked at on every call


def test_a_watched_table_file_whose_directory_goes_away_is_still_followed(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    path = run / "routes.json"
    save_route_table(_table(), path)
    source = TableFile(path)
    loop = asyncio.new_event_loop()
    try:
        assert source.watch(loop)
        assert source().lookup("hello.corral.test") is not None
        path.unlink()
        run.rmdir()  # the watch ends with its directory: from then on each call looks
        loop.run_until_complete(asyncio.sleep(0.05))
        assert source().lookup("hello.corral.test") is not None  # missing: the last good one
        run.mkdir()
        save_route_table(RouteTable(domain="corral.test"), path)

        def new_table_seen() -> bool:
            loop.run_until_complete(asyncio.sleep(0.01))
            return source().lookup("hello.corral.test") is None

        wait_until(new_table_seen, 5, interval=0.01)
    finally:
        source.close()
        loop.close()


def test_table_file_checks_at_most_every_interval(tmp_path: Path) -> None:
    path = tmp_path / "routes.json"
    save_route_table(RouteTable(domain="corral.test"), path)
    source = TableFile(path, interval=3600)
    assert source().apps == {}
    save_route_table(_table(), path)
    assert source().apps == {}  # within the interval the cached table is served


def test_table_file_keeps_last_good_table_on_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "routes.json"
    save_route_table(_table(), path)
    source = TableFile(path, interval=0.0)
    assert source().lookup("hello.corral.test") is not None
    path.write_text("{not json")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert source().lookup("hello.corral.test") is not None


def test_table_file_domain_overrides_the_files(tmp_path: Path) -> None:
    path = tmp_path / "routes.json"
    save_route_table(_table(), path)
    source = TableFile(path, domain="example.org", interval=0.0)
    assert source().lookup("hello.example.org") is not None


def test_host_routes_look_up_a_host_once_per_table() -> None:
    looked_up: list[str] = []

    class Counting(RouteTable):
        def lookup(self, host_header: str) -> AppRoute | None:
            looked_up.append(host_header)
            return super().lookup(host_header)

    table = Counting(domain="corral.test", apps={"hello": AppRoute("hello", (WEB1,))})
    current = [table]
    routes = HostRoutes(lambda: current[0])
    assert routes.lookup("hello.corral.test") == AppRoute("hello", (WEB1,))
    assert routes.lookup("hello.corral.test") == AppRoute("hello", (WEB1,))
    assert routes.lookup("nope.corral.test") is None
    assert routes.lookup("nope.corral.test") is None
    assert looked_up == ["hello.corral.test", "nope.corral.test"]
    # A new table (routing changed) forgets every kept route, misses included.
    current[0] = Counting(domain="corral.test", apps={"nope": AppRoute("nope")})
    assert routes.lookup("hello.corral.test") is None
    assert routes.lookup("nope.corral.test") == AppRoute("nope")
    assert looked_up[2:] == ["hello.corral.test", "nope.corral.test"]


def test_forward_outcomes_name_router_pages_or_say_keep_or_close() -> None:
    for outcome, code in ((REFUSED, "H10"), (TIMED_OUT, "H12"), (BACKEND_CLOSED, "H13")):
        # The client connection answers these with the router's page for the failure.
        assert FAILURES[outcome.failure].code == code
        assert outcome.upgraded is None
    assert KEEP.keep_alive and not KEEP.failure and KEEP.upgraded is None
    assert not CLOSE.keep_alive and not CLOSE.failure and CLOSE.upgraded is None


def test_round_robin_cycles_through_backends() -> None:
    rr = RoundRobin()
    route = AppRoute("hello", (WEB1, WEB2, WEB3))
    firsts = [rr.order(route)[0].dyno for _ in range(6)]
    assert firsts == ["web.1", "web.2", "web.3", "web.1", "web.2", "web.3"]
    assert [b.dyno for b in rr.order(route)] == ["web.1", "web.2", "web.3"]


def test_round_robin_position_survives_a_reload_with_the_same_backends() -> None:
    rr = RoundRobin()
    rr.order(AppRoute("hello", (WEB1, WEB2, WEB3)))
    # A reloaded table builds new, equal objects: the turn goes on where it was.
    reloaded = AppRoute("hello", (Backend("web.1", "127.0.0.1", 5001), WEB2, WEB3))
    assert rr.order(reloaded)[0].dyno == "web.2"
    assert rr.order(AppRoute("hello", (WEB1, WEB3)))[0].dyno == "web.1"  # changed: restart


def test_round_robin_with_no_backends_is_empty() -> None:
    assert RoundRobin().order(AppRoute("hello")) == []


def test_error_pages_escape_what_the_client_sent() -> None:
    page = render_page(FAILURES["no_app"], request_id="abc", host="<script>x</script>").decode()
    assert "&lt;script&gt;" in page and "<script>" not in page


def test_logfmt_quotes_values_that_need_it() -> None:
    line = logfmt({"at": "error", "desc": "Request timeout", "path": "/a b", "fwd": "1.2.3.4"})
    assert line == 'at=error desc="Request timeout" path="/a b" fwd="1.2.3.4"'


def test_router_log_files_rotate_by_size(tmp_path) -> None:
    import asyncio

    from corral.router.__main__ import _AppLogs

    async def write_lines() -> None:
        logs = _AppLogs(tmp_path, max_bytes=500)
        for i in range(30):
            logs("hello", f"at=info n={i}")
            logs.flush()

    asyncio.run(write_lines())
    rotated = tmp_path / "hello" / "router.log.1"
    assert rotated.exists() and rotated.stat().st_size >= 500
    current = tmp_path / "hello" / "router.log"  # absent right after a rotation
    assert not current.exists() or current.stat().st_size < 500


def test_router_log_stamps_are_the_logs_timestamps() -> None:
    from datetime import datetime

    from corral.logfiles import parse_line, timestamp
    from corral.router.applogs import Stamps

    stamps = Stamps()
    seconds = set()

    def across_a_second() -> bool:
        ours, theirs = stamps(), timestamp()
        assert len(ours) == len(theirs) and ours[-6:] == "+00:00"
        gap = datetime.fromisoformat(theirs) - datetime.fromisoformat(ours)
        assert 0 <= gap.total_seconds() < 0.5
        line = parse_line(f"{ours} router: at=info")
        assert line is not None and line.timestamp == ours
        seconds.add(ours[:19])
        return len(seconds) == 2

    wait_until(across_a_second, 3, interval=0.01)
