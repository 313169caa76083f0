"""Package managers corral runs for apps locked with them (Poetry, Pipenv), installed once.

Each tool is installed by uv at a pinned version into its own virtualenv under
``CORRAL_HOME/tools/<tool>-<version>-py<python>``, built with the build's interpreter (one
the app's user can run), as the platform's user and from the host's index only (never an
app's config vars: the tool is shared by every app). It counts once its marker exists; run
as root, it is sealed first (root's, read-only): app users run it, none can change it.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from corral.builder.commands import installer_environ, run_streaming, uv_bin
from corral.builder.log import BuildLog
from corral.builder.ownership import ENV_MODES, seal
from corral.builder.python import Interpreter
from corral.builder.source import remove_tree
from corral.config import Settings
from corral.files import atomic_write, locked

__all__ = ["TOOLS", "Tool", "ensure_tool"]

_MARKER = ".corral-tool-complete"


@dataclass(frozen=True)
class Tool:
    """One package manager: its command and the pinned distributions that make it."""

    name: str
    requirements: tuple[str, ...]

    @property
    def version(self) -> str:
        return self.requirements[0].split("==", 1)[1]


#: Poetry 2 dropped ``poetry export`` into a plugin: it is installed beside it.
TOOLS = {
    "poetry": Tool("poetry", ("poetry==2.5.1", "poetry-plugin-export==1.10.1")),
    "pipenv": Tool("pipenv", ("pipenv==2026.10.3",)),
}


def tool_dir(settings: Settings, tool: Tool, python: Interpreter) -> Path:
    """Where ``tool`` lives for builds on ``python``."""
    return settings.home / "tools" / f"{tool.name}-{tool.version}-py{python.version}"


def ensure_tool(settings: Settings, name: str, python: Interpreter, log: BuildLog) -> Path:
    """The executable of tool ``name``, installing it first if this host has not yet."""
    tool = TOOLS[name]
    path = tool_dir(settings, tool, python)
    executable = path / "bin" / tool.name
    if (path / _MARKER).is_file():
        return executable
    tools = path.parent
    tools.mkdir(parents=True, exist_ok=True)
    tools.chmod(0o755)
    with locked(tools / f".{path.name}.lock"):
        if (path / _MARKER).is_file():  # another build installed it meanwhile
            return executable
        remove_tree(path)
        log.detail(f"Installing {tool.name} {tool.version} (once per host and Python)")
        env = installer_environ(settings)
        run = functools.partial(run_streaming, cwd=tools, env=env, log=log)
        try:
            uv = uv_bin()
            venv = [uv, "venv", "--quiet", "--no-config", "--python", str(python.executable)]
            run([*venv, str(path)], what=f"Creating the {tool.name} environment")
            install = [uv, "pip", "install", "--quiet", "--compile-bytecode", "--no-config"]
            target = ["--python", str(path / "bin" / "python"), *tool.requirements]
            run([*install, *target], what=f"Installing {tool.name} {tool.version}")
            if os.geteuid() == 0:
                seal(path, 0, ENV_MODES)
            atomic_write(path / _MARKER, tool.version, mode=0o444)
        except BaseException:
            remove_tree(path)
            raise
    return executable
