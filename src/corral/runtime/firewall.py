"""Network isolation between apps: corral's firewall rules, applied with nft or iptables.

:func:`detect` picks the backend this host has (nftables, else iptables, else none, with
one line saying why), and the supervisor calls :meth:`Firewall.sync` with every dyno
port's owner whenever its route table changes. Each sync is one ``nft -f`` transaction
(the home's whole table replaced at once), so rules never have a moment with a hole in
them; :meth:`Firewall.clear` removes everything corral added. What the rules say is
:mod:`corral.runtime.netrules`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from typing import Protocol

from corral.appusers import home_tag
from corral.config import Settings
from corral.runtime import netrules

__all__ = ["Firewall", "FirewallError", "Iptables", "Nftables", "detect"]

#: Where the firewall tools are when the caller's PATH lacks the sbin directories.
TOOL_PATH = "/usr/sbin:/sbin:/usr/bin:/bin"
#: A firewall tool that has not answered in this long is stuck (a held xtables lock).
TIMEOUT = 10.0


class FirewallError(Exception):
    """The rules could not be applied; the ones in force before are still in force."""


class Firewall(Protocol):
    """What the supervisor needs of a firewall backend."""

    #: What is in force, for the start line (``nftables: table inet corral_<tag>``).
    description: str

    def sync(self, owners: Mapping[int, int]) -> None:
        """Make ``owners`` (port -> the uid allowed to connect) the rules, at once."""

    def clear(self) -> None:
        """Remove every rule, set, chain and table corral added."""


def _run(argv: list[str], script: str | None = None) -> str:
    """Run a firewall tool; its first line of complaint (empty if it succeeded)."""
    try:
        done = subprocess.run(
            argv, input=script, capture_output=True, text=True, check=False,
            env={"PATH": TOOL_PATH, "LC_ALL": "C"}, cwd="/", timeout=TIMEOUT,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"{argv[0]} did not finish within {TIMEOUT:.0f}s"
    except OSError as error:
        return f"{argv[0]}: {error.strerror}"
    if done.returncode == 0:
        return ""
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    # nft names the failing line of the script last; its first line says what went wrong
    return lines[0] if lines else f"{argv[0]} exited with status {done.returncode}"


class Nftables:
    """corral's rules as one nftables table of this home's (``inet corral_<tag>``)."""

    def __init__(self, nft: str, tag: str, uid_range: tuple[int, int]) -> None:
        self.nft = nft
        self.tag = tag
        self.uid_range = uid_range
        self.table = f"inet {netrules.table_name(tag)}"
        self.description = f"nftables: table {self.table}"

    def check(self) -> str:
        """Whether the kernel would take the rules (``nft --check``: nothing changes)."""
        return _run([self.nft, "--check", "-f", "-"], self._script({}))

    def _script(self, owners: Mapping[int, int]) -> str:
        return netrules.nft_ruleset(self.tag, self.uid_range, owners)

    def sync(self, owners: Mapping[int, int]) -> None:
        """Replace the home's table whole, in one kernel transaction."""
        if problem := _run([self.nft, "-f", "-"], self._script(owners)):
            raise FirewallError(f"nft could not apply corral's rules: {problem}")

    def clear(self) -> None:
        """Remove the home's table (nothing else of nftables is touched)."""
        if problem := _run([self.nft, "-f", "-"], netrules.nft_removal(self.tag)):
            raise FirewallError(f"nft could not remove table {self.table}: {problem}")


class Iptables:
    """corral's rules as a chain of this home's, jumped to from ``OUTPUT`` (IPv4 and IPv6).

    Used where nft is missing. A sync is one ``iptables-restore`` per address family (the
    chain refilled in one commit each); the jump is added at the first sync.
    """

    def __init__(self, tools: list[str], tag: str, uid_range: tuple[int, int]) -> None:
        #: ``iptables``, and ``ip6tables`` where the host has IPv6 rules.
        self.tools = tools
        self.tag = tag
        self.uid_range = uid_range
        self.chain = netrules.chain_name(tag)
        families = "IPv4 and IPv6" if len(tools) > 1 else "IPv4 only"
        self.description = f"iptables: chain {self.chain} in OUTPUT, {families}"
        self._hooked = False

    def _hook(self) -> None:
        for tool in self.tools:
            missing = _run([tool, "-w", "-C", "OUTPUT", "-j", self.chain])
            if missing and (problem := _run([tool, "-w", "-I", "OUTPUT", "1", "-j", self.chain])):
                raise FirewallError(f"{tool} could not add the jump to {self.chain}: {problem}")
        self._hooked = True

    def sync(self, owners: Mapping[int, int]) -> None:
        """Refill the home's chain, one commit per address family."""
        script = netrules.iptables_rules(self.tag, self.uid_range, owners)
        for tool in self.tools:
            if problem := _run([f"{tool}-restore", "-w", "--noflush"], script):
                raise FirewallError(f"{tool}-restore could not apply corral's rules: {problem}")
        if not self._hooked:
            self._hook()

    def clear(self) -> None:
        """Remove the jumps to the home's chain, then the chain."""
        for tool in self.tools:
            for _ in range(100):  # bounded: each -D removes one copy of the jump
                if _run([tool, "-w", "-D", "OUTPUT", "-j", self.chain]):
                    break
            exists = not _run([tool, "-w", "-F", self.chain])
            if exists and (problem := _run([tool, "-w", "-X", self.chain])):
                raise FirewallError(f"{tool} could not remove {self.chain}: {problem}")
        self._hooked = False


def _iptables(search_path: str, tag: str, uid_range: tuple[int, int]) -> Iptables | str:
    tools = []
    for name in ("iptables", "ip6tables"):
        tool = shutil.which(name, path=search_path)
        restore = shutil.which(f"{name}-restore", path=search_path)
        if tool and restore:
            # listing corral's own table needs the same rights and modules as changing it
            if problem := _run([tool, "-w", "-S", "OUTPUT"]):
                if name == "iptables":
                    return f"iptables failed ({problem})"
                continue  # a host without IPv6 rules: IPv4 only, said in the description
            tools.append(tool)
        elif name == "iptables":
            return ""
    return Iptables(tools, tag, uid_range)


def detect(
    settings: Settings, *, search_path: str = TOOL_PATH
) -> tuple[Nftables | Iptables | None, str]:
    """The firewall this host can give corral, and one line saying which, or why none.

    Nothing is changed: nft's rules are tried with ``--check``, iptables by listing.
    """
    tag = home_tag(settings.home)
    problems = []
    nft = shutil.which("nft", path=search_path)
    if nft:
        backend = Nftables(nft, tag, settings.uid_range)
        if not (problem := backend.check()):
            return backend, f"on ({backend.description})"
        problems.append(f"nft failed ({problem})")
    found = _iptables(search_path, tag, settings.uid_range)
    if isinstance(found, Iptables):
        return found, f"on ({found.description})"
    if found:
        problems.append(found)
    if not problems:
        return None, (
            "off: neither nft nor iptables is installed, so apps can connect to each "
            "other's dynos (apt-get install nftables)"
        )
    return None, f"off: {'; '.join(problems)}, so apps can connect to each other's dynos"
