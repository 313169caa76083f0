"""The environment a process of a slug runs with, the same locally and on the platform."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from corral.builder.slug import BASE_PATH, Slug

__all__ = ["base_environ", "process_environ"]


def base_environ() -> dict[str, str]:
    """The environment every dyno, one-off and release phase starts from, before config vars.

    Only a plain PATH, HOME and a UTF-8 locale: nothing of the platform's own environment
    leaks into an app.
    """
    return {
        "PATH": BASE_PATH,
        "HOME": os.environ.get("HOME", "/"),
        "LANG": "C.UTF-8",
    }


def process_environ(
    slug: Slug,
    *,
    base: Mapping[str, str],
    config: Mapping[str, str] = {},
    port: int | None = None,
    dyno: str | None = None,
    runtime_dir: Path | None = None,
) -> dict[str, str]:
    """Environment for one process: ``base`` + config vars, the app's virtualenv first on PATH.

    Dynos bind to loopback by default (the router is the public face), so gunicorn gets
    ``--bind 127.0.0.1:$PORT`` through ``GUNICORN_CMD_ARGS`` unless the app sets its own.
    ``runtime_dir`` becomes ``XDG_RUNTIME_DIR``, so per-process sockets (gunicorn 24+'s
    control socket) do not collide between dynos.
    """
    env = dict(base)
    env.pop("PYTHONHOME", None)
    env.update(config)
    env["VIRTUAL_ENV"] = str(slug.env_path)
    paths = [str(slug.env_path / "bin")]
    paths += [os.path.join(p, "bin") for p in slug.pythonpath]
    env["PATH"] = os.pathsep.join([*paths, env.get("PATH", os.defpath)])
    if slug.pythonpath:
        extra = [*slug.pythonpath, env["PYTHONPATH"]] if env.get("PYTHONPATH") else slug.pythonpath
        env["PYTHONPATH"] = os.pathsep.join(extra)
    env["PYTHONUNBUFFERED"] = "1"
    if port is not None:
        env["PORT"] = str(port)
        env.setdefault("GUNICORN_CMD_ARGS", f"--bind 127.0.0.1:{port}")
    if dyno is not None:
        env["DYNO"] = dyno
    if runtime_dir is not None:
        runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        env["XDG_RUNTIME_DIR"] = str(runtime_dir)
    return env
