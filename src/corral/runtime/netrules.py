"""The firewall rules that keep one app's processes off another app's dyno ports (pure).

Each app runs as a uid of its own in ``$CORRAL_UIDS``. A new TCP connection on the
loopback interface (``127.0.0.1``, ``::1`` and the host's own addresses all go out through
``lo``) from a socket owned by a uid in that range, to a port the platform has given out,
is reset unless that uid owns the port: a dyno reaches its own app's other dynos, never
another app's, nor the platform's internal services (owned by :data:`PLATFORM`, a uid no
app has). Root (the router, the API) and every other user are never matched, nor are
ports corral did not give out, such as the router's public port.

This module only writes rules as text, for ``nft -f`` and ``iptables-restore``; applying
them is :mod:`corral.runtime.firewall`'s job.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["PLATFORM", "chain_name", "iptables_rules", "nft_removal", "nft_ruleset", "table_name"]

#: The owner of a platform service's port (the API's, the streams service's): root, so no
#: app user may connect to it directly, only through the router.
PLATFORM = 0


def table_name(tag: str) -> str:
    """The nftables table of one platform home (``inet corral_<tag>``)."""
    return f"corral_{tag}"


def chain_name(tag: str) -> str:
    """The iptables chain of one platform home (at most 28 characters, iptables' limit)."""
    return f"CORRAL-{tag}"[:28]


def _checked(owners: Mapping[int, int]) -> list[tuple[int, int]]:
    pairs = sorted(owners.items())
    for port, uid in pairs:
        if not (isinstance(port, int) and 0 < port < 65536):
            raise ValueError(f"not a TCP port: {port!r}")
        if not (isinstance(uid, int) and uid >= 0):
            raise ValueError(f"not a uid: {uid!r} (for port {port})")
    return pairs


def _elements(items: list[str]) -> str:
    # nft refuses an empty `elements = { }`: an empty set is written without the line
    return f" elements = {{ {', '.join(items)} }};" if items else ""


def nft_ruleset(tag: str, uid_range: tuple[int, int], owners: Mapping[int, int]) -> str:
    """An ``nft -f`` script that replaces the home's table whole, in one transaction.

    ``owners`` maps each dyno (or platform service) port to the uid allowed to connect.
    Declaring the table before deleting it makes the delete succeed on the first sync.
    """
    pairs = _checked(owners)
    low, high = uid_range
    table = f"inet {table_name(tag)}"
    ports = _elements([str(port) for port, _ in pairs])
    allowed = _elements([f"{port} . {uid}" for port, uid in pairs])
    return (
        f"table {table}\n"
        f"delete table {table}\n"
        f"table {table} {{\n"
        f"  set ports {{ type inet_service;{ports} }}\n"
        f"  set owners {{ type inet_service . uid;{allowed} }}\n"
        "  chain output {\n"
        "    type filter hook output priority filter; policy accept;\n"
        f'    oifname "lo" meta skuid {low}-{high} tcp flags & (syn | ack) == syn'
        " tcp dport @ports tcp dport . meta skuid != @owners"
        " counter reject with tcp reset\n"
        "  }\n"
        "}\n"
    )


def nft_removal(tag: str) -> str:
    """An ``nft -f`` script that removes the home's table, whether or not it exists."""
    table = f"inet {table_name(tag)}"
    return f"table {table}\ndelete table {table}\n"


def iptables_rules(tag: str, uid_range: tuple[int, int], owners: Mapping[int, int]) -> str:
    """An ``iptables-restore --noflush`` script that refills the home's chain at once.

    Declaring the chain flushes it in the same commit, so a sync never leaves a moment with
    no rules; the jump from ``OUTPUT`` is added once, apart (see the firewall module).
    """
    pairs = _checked(owners)
    low, high = uid_range
    chain = chain_name(tag)
    lines = ["*filter", f":{chain} - [0:0]"]
    for port, uid in pairs:
        match = f"-A {chain} -o lo -p tcp --syn --dport {port} -m owner --uid-owner"
        if uid != PLATFORM:
            lines.append(f"{match} {uid} -j RETURN")
        lines.append(f"{match} {low}-{high} -j REJECT --reject-with tcp-reset")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"
