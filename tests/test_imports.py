"""The shape of ``src/corral``: no import cycles, and dependencies that run one way.

CLI -> API -> store <- supervisor -> route table -> router: each part may use the ones
after it on that line, never the ones before. Checked on the source with ``ast``, every
import counted (``TYPE_CHECKING`` ones too: a cycle hidden there is still a cycle).
"""

from __future__ import annotations

import ast
from pathlib import Path

import corral

SRC = Path(corral.__file__).parent

#: package -> the corral packages it must never import.
FORBIDDEN = {
    "corral.store": ("corral.api", "corral.cli", "corral.runtime", "corral.router",
                     "corral.deploy", "corral.server", "corral.local", "corral.addons"),
    # add-ons provision databases for the API and declare their servers to the supervisor
    "corral.addons": ("corral.api", "corral.cli", "corral.server", "corral.router",
                      "corral.deploy", "corral.local", "corral.streams"),
    "corral.router": ("corral.api", "corral.cli", "corral.runtime", "corral.store",
                      "corral.deploy", "corral.server", "corral.builder", "corral.local",
                      "corral.streams"),
    "corral.streams": ("corral.api", "corral.cli", "corral.deploy", "corral.server",
                       "corral.router", "corral.builder", "corral.local"),
    "corral.runtime": ("corral.api", "corral.cli", "corral.deploy", "corral.server",
                       "corral.local", "corral.addons"),
    "corral.builder": ("corral.api", "corral.cli", "corral.runtime", "corral.router",
                       "corral.deploy", "corral.server", "corral.store"),
    "corral.deploy": ("corral.api", "corral.cli", "corral.server"),
    "corral.api": ("corral.cli", "corral.server"),
    "corral.server": ("corral.cli", "corral.api"),
    "corral.certs": ("corral.api", "corral.cli", "corral.runtime", "corral.deploy",
                     "corral.server", "corral.builder", "corral.local", "corral.streams"),
    "corral.local": ("corral.api", "corral.cli", "corral.server", "corral.store",
                     "corral.deploy", "corral.router"),
}  # fmt: skip


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        if "template" in path.relative_to(SRC).parts:  # `corral new`'s files, not corral's
            continue
        parts = ("corral", *path.relative_to(SRC).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
            candidates = subs + ([base] if len(subs) < len(node.names) else [])
        else:
            continue
        for target in candidates:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                targets.add(target)
    return targets


def import_graph() -> dict[str, set[str]]:
    """Module -> the corral modules it imports."""
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles() -> None:
    cycle = _cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_dependencies_run_one_way() -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for package, banned in FORBIDDEN.items()
        if module == package or module.startswith(package + ".")
        for target in targets
        if any(target == b or target.startswith(b + ".") for b in banned)
    )
    assert not wrong, "\n".join(wrong)


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_is_over_400_lines() -> None:
    long = {
        name: n
        for name, path in _modules().items()
        if (n := len(path.read_text().splitlines())) > 400
    }
    assert not long, long
