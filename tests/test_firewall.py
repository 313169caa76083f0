"""Network isolation: one app's uid is refused by another app's dyno ports (nft, iptables).

Real rules in the kernel and real sockets on loopback: listeners stand in for two apps'
dynos, and clients connect as those apps' uids (numeric, no system user needed) and as
root. Every test's rules live in a table (or chain) of its own home and are removed after.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.config import Settings
from corral.runtime import netrules
from corral.runtime.firewall import FirewallError, Iptables, Nftables, detect
from support.connect import connect_as, listening

ALPHA, BRAVO = 40001, 40002
TOOLS = "/usr/sbin:/sbin:/usr/bin:/bin"


def _needs(condition: bool, reason: str) -> None:
    # CI is root and installs nftables and iptables: there, a missing one is a failure
    if not condition and not os.environ.get("CI"):
        pytest.skip(reason)


@pytest.fixture
def nft(tmp_path: Path) -> Iterator[Nftables]:
    """The nftables backend of a fresh home; its table is removed afterwards."""
    _needs(os.geteuid() == 0, "firewall rules need root")
    _needs(shutil.which("nft", path=TOOLS) is not None, "nftables is not installed")
    backend, note = detect(Settings(home=tmp_path / "home"))
    assert isinstance(backend, Nftables), note
    yield backend
    backend.clear()


@pytest.fixture
def iptables(tmp_path: Path) -> Iterator[Iptables]:
    """The iptables backend of a fresh home (as if nft were missing); removed afterwards."""
    _needs(os.geteuid() == 0, "firewall rules need root")
    _needs(shutil.which("iptables", path=TOOLS) is not None, "iptables is not installed")
    only = tmp_path / "sbin"
    only.mkdir()
    for name in ("iptables", "iptables-restore", "ip6tables", "ip6tables-restore"):
        if found := shutil.which(name, path=TOOLS):
            (only / name).symlink_to(found)
    backend, note = detect(Settings(home=tmp_path / "home"), search_path=str(only))
    assert isinstance(backend, Iptables), note
    yield backend
    backend.clear()


def _nft_tables() -> str:
    return subprocess.run(
        ["nft", "list", "tables"], capture_output=True, text=True, check=True,
        env={"PATH": TOOLS},
    ).stdout  # fmt: skip


def _chains(tool: str) -> str:
    return subprocess.run(
        [tool, "-w", "-S"], capture_output=True, text=True, check=True, env={"PATH": TOOLS}
    ).stdout


# -- the rules as text ---------------------------------------------------------------------


def test_nft_ruleset_replaces_the_table_whole_and_writes_empty_sets_without_elements() -> None:
    empty = netrules.nft_ruleset("abc", (40000, 49999), {})
    assert empty.startswith("table inet corral_abc\ndelete table inet corral_abc\n")
    assert "elements" not in empty
    full = netrules.nft_ruleset("abc", (40000, 49999), {5001: ALPHA, 5002: netrules.PLATFORM})
    assert "elements = { 5001, 5002 }" in full
    assert "elements = { 5001 . 40001, 5002 . 0 }" in full
    assert "meta skuid 40000-49999" in full and "reject with tcp reset" in full


def test_iptables_rules_let_the_owner_through_and_no_app_through_to_the_platform() -> None:
    rules = netrules.iptables_rules("abc", (40000, 49999), {5001: ALPHA, 5002: 0})
    lines = rules.splitlines()
    assert lines[:2] == ["*filter", ":CORRAL-abc - [0:0]"] and lines[-1] == "COMMIT"
    assert any("--dport 5001" in line and "40001 -j RETURN" in line for line in lines)
    assert not any("--dport 5002" in line and "RETURN" in line for line in lines)
    assert sum("tcp-reset" in line for line in lines) == 2


@pytest.mark.parametrize("owners", [{0: ALPHA}, {70000: ALPHA}, {5001: -1}, {"80": ALPHA}])
def test_a_bad_port_or_uid_is_refused_before_any_rule_is_written(owners: dict) -> None:
    with pytest.raises(ValueError):
        netrules.nft_ruleset("abc", (40000, 49999), owners)


# -- nftables, in the kernel ---------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_an_app_reaches_its_own_dynos_and_is_refused_another_apps(nft: Nftables, host: str) -> None:
    with listening(host, 2) as (alpha_port, bravo_port):
        nft.sync({alpha_port: ALPHA, bravo_port: BRAVO})
        assert connect_as(ALPHA, host, alpha_port) == "connected"
        assert connect_as(ALPHA, host, bravo_port) == "refused"
        assert connect_as(BRAVO, host, alpha_port) == "refused"
        assert connect_as(BRAVO, host, bravo_port) == "connected"
        assert connect_as(0, host, alpha_port) == "connected"  # the router, the API
        assert connect_as(0, host, bravo_port) == "connected"


def _own_addresses() -> list[str]:
    """Another loopback address, and the address this host would reach the world from."""
    found = ["127.0.0.2"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
            found.append(probe.getsockname()[0])
        except OSError:
            pass  # a host with no route out: its loopback addresses are all there is
    return found


def test_a_dyno_listening_on_every_address_is_refused_on_each_of_them(nft: Nftables) -> None:
    with listening("0.0.0.0") as (port,):
        nft.sync({port: ALPHA})
        for address in _own_addresses():
            assert connect_as(BRAVO, address, port) == "refused", address
            assert connect_as(ALPHA, address, port) == "connected", address


def test_the_platforms_ports_are_refused_to_apps_and_other_ports_are_left_alone(
    nft: Nftables,
) -> None:
    with listening(count=2) as (api_port, router_port):
        nft.sync({api_port: netrules.PLATFORM})
        assert connect_as(ALPHA, "127.0.0.1", api_port) == "refused"
        assert connect_as(0, "127.0.0.1", api_port) == "connected"
        # the router's public port is nobody's in the table: apps still reach it
        assert connect_as(ALPHA, "127.0.0.1", router_port) == "connected"
        assert connect_as(1000, "127.0.0.1", api_port) == "connected"  # not an app's uid


def test_a_resync_moves_the_right_to_connect_with_the_port(nft: Nftables) -> None:
    with listening() as (port,):
        nft.sync({port: ALPHA})
        assert connect_as(BRAVO, "127.0.0.1", port) == "refused"
        nft.sync({port: BRAVO})
        assert connect_as(BRAVO, "127.0.0.1", port) == "connected"
        assert connect_as(ALPHA, "127.0.0.1", port) == "refused"
        nft.sync({})
        assert connect_as(ALPHA, "127.0.0.1", port) == "connected"


def test_clear_leaves_no_table_behind(nft: Nftables) -> None:
    nft.sync({5001: ALPHA})
    assert f"table {nft.table}" in _nft_tables()
    nft.clear()
    assert f"table {nft.table}" not in _nft_tables()
    nft.clear()  # a second clear, with nothing left, is not an error


def test_two_homes_keep_tables_of_their_own(nft: Nftables, tmp_path: Path) -> None:
    other, _ = detect(Settings(home=tmp_path / "other"))
    assert isinstance(other, Nftables) and other.table != nft.table
    try:
        with listening(count=2) as (mine, theirs):
            nft.sync({mine: ALPHA})
            other.sync({theirs: BRAVO})
            assert connect_as(BRAVO, "127.0.0.1", mine) == "refused"
            assert connect_as(ALPHA, "127.0.0.1", theirs) == "refused"
            other.clear()
            assert f"table {nft.table}" in _nft_tables()
            assert connect_as(ALPHA, "127.0.0.1", theirs) == "connected"
            assert connect_as(BRAVO, "127.0.0.1", mine) == "refused"
    finally:
        other.clear()


def test_a_sync_the_kernel_refuses_raises_and_keeps_the_rules_in_force(
    nft: Nftables, tmp_path: Path
) -> None:
    with listening() as (port,):
        nft.sync({port: ALPHA})
        broken = Nftables(nft.nft, nft.tag, (49999, 40000))  # a range nft refuses
        with pytest.raises(FirewallError, match="nft could not apply"):
            broken.sync({port: BRAVO})
        assert connect_as(BRAVO, "127.0.0.1", port) == "refused"


# -- iptables, where nft is missing --------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_iptables_refuses_another_apps_uid_and_clears_its_chain(
    iptables: Iptables, host: str
) -> None:
    if host == "::1":
        _needs(len(iptables.tools) == 2, "this host has no IPv6 rules (ip6tables fails)")
    with listening(host, 2) as (alpha_port, bravo_port):
        iptables.sync({alpha_port: ALPHA, bravo_port: BRAVO})
        iptables.sync({alpha_port: ALPHA, bravo_port: BRAVO})  # a resync adds no second copy
        assert connect_as(ALPHA, host, alpha_port) == "connected"
        assert connect_as(ALPHA, host, bravo_port) == "refused"
        assert connect_as(0, host, bravo_port) == "connected"
        iptables.sync({alpha_port: BRAVO})
        assert connect_as(ALPHA, host, alpha_port) == "refused"
        assert connect_as(ALPHA, host, bravo_port) == "connected"
    for tool in iptables.tools:
        assert _chains(tool).count(f"-j {iptables.chain}") == 1
    iptables.clear()
    for tool in iptables.tools:
        assert iptables.chain not in _chains(tool)


# -- detect: which backend, or one line saying why none ------------------------------------


def test_without_nft_or_iptables_detect_says_so_in_one_line(tmp_path: Path) -> None:
    backend, note = detect(Settings(home=tmp_path / "home"), search_path=str(tmp_path))
    assert backend is None
    assert note.startswith("off: neither nft nor iptables is installed") and "\n" not in note


def test_an_nft_that_fails_gives_the_reason_and_raises_nothing(tmp_path: Path) -> None:
    (tmp_path / "nft").write_text("#!/bin/sh\necho 'Error: Operation not permitted' >&2\nexit 1\n")
    (tmp_path / "nft").chmod(0o755)
    backend, note = detect(Settings(home=tmp_path / "home"), search_path=str(tmp_path))
    assert backend is None
    assert note.startswith("off: nft failed (Error: Operation not permitted)")
    assert "\n" not in note


def test_not_root_detect_says_why_and_changes_nothing(tmp_path: Path) -> None:
    _needs(os.geteuid() == 0, "dropping to an app's uid needs root")
    _needs(shutil.which("nft", path=TOOLS) is not None, "nftables is not installed")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(ALPHA)
            os.setuid(ALPHA)
            backend, note = detect(Settings(home=tmp_path / "home"))
            os.write(write, f"{backend is None}|{note}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        said = pipe.read()
    os.waitpid(pid, 0)
    assert said.startswith("True|off: nft failed ("), said
    assert "Operation not permitted" in said and "\n" not in said
