"""The builder: turn an app's source into a slug (a snapshot plus a ready virtualenv).

:func:`build` detects the app, picks its Python, reuses or builds its environment,
runs framework steps and reads its process types, printing Heroku-style steps.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from corral.builder.detect import detect
from corral.builder.environment import INSTALLERS, ensure_environment, installer_environ, uv_bin
from corral.builder.log import BuildLog, Emit, hidden_values
from corral.builder.procfile import process_types
from corral.builder.python import find_interpreter, installed_interpreters, python_request
from corral.builder.slug import Slug, refuse_oversized, write_metadata
from corral.builder.source import copy_source, make_read_only, remove_tree
from corral.builder.steps import (
    collectstatic,
    install_project,
    missing_programs,
    post_compile,
    step_environ,
)
from corral.config import Settings
from corral.errors import BuildError

__all__ = ["Slug", "build", "default_app_name"]


def default_app_name(source: Path) -> str:
    """An app name derived from the source directory's name."""
    name = re.sub(r"[^a-z0-9-]+", "-", source.resolve().name.lower()).strip("-")
    return name or "app"


def _new_slug_id() -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def _clear_abandoned(slugs_dir: Path) -> None:
    """Remove slugs a killed build left half-made (their builder's pid is gone)."""
    if not slugs_dir.is_dir():
        return
    for entry in slugs_dir.glob(".building-*"):
        pid = entry.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            remove_tree(entry)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def build(
    source: Path,
    settings: Settings,
    *,
    app: str | None = None,
    output: Path | None = None,
    snapshot: bool = True,
    procfile: Path | None = None,
    installer: str | None = None,
    require_processes: bool = True,
    config: Mapping[str, str] = {},
    emit: Emit = print,
) -> Slug:
    """Build ``source`` into a slug and return it; a failed build leaves nothing behind.

    With ``snapshot=False`` (``corral local``) the source is not copied: the slug points
    at ``source`` itself and framework steps that write into it are skipped. With
    ``require_processes=False`` an app with no Procfile and nothing to infer still builds
    (for one-off commands), with no process types. ``config`` (the app's config vars)
    reaches the installers and framework steps; its values never reach the output.
    """
    started = time.monotonic()
    log = BuildLog(emit, hidden=hidden_values(config))
    source = Path(source)
    app = app or default_app_name(source)
    slug_id = _new_slug_id() if snapshot else "local"
    if not source.is_dir():
        raise BuildError(f"{source} is not a directory; pass the app's source directory.")
    if output is not None and output.exists():
        raise BuildError(f"{output} already exists; choose a new output directory.")
    final = (output or settings.slugs_dir(app) / slug_id) if snapshot else source
    work = source
    if snapshot:
        _clear_abandoned(final.parent)
        work = final.parent / f".building-{slug_id}-{os.getpid()}"
    try:
        if snapshot:
            detect(source)  # refuse empty or unknown sources before copying anything
            with log.step("Copying source into the slug"):
                snap = copy_source(source, work, warn=log.warn)
                log.retitle(f"Copied {snap.files} files into the slug")
            digest = snap.digest
        else:
            digest = ""
        options = _Options(installer, procfile, snapshot, require_processes, config)
        slug = _build_in(work, settings, log, app, slug_id, options)
        slug = replace(
            slug,
            path=final,
            pythonpath=[str(final / Path(p).relative_to(work)) for p in slug.pythonpath],
            source_digest=digest,
            build_seconds=round(time.monotonic() - started, 3),
        )
        if snapshot:
            refuse_oversized(work, slug.env_path, settings.slug_max_mb)
            write_metadata(slug, work)
            make_read_only(work)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(work, final)
    except BaseException:
        if snapshot:
            remove_tree(work)
        raise
    return slug


def _choose_installer(requested: str | None, options: dict) -> str:
    installer = requested or options.get("installer") or "uv"
    if installer not in INSTALLERS:
        raise BuildError(
            f"Unknown installer {installer!r} in [tool.corral]; use one of: "
            + ", ".join(INSTALLERS)
            + "."
        )
    return installer


@dataclass(frozen=True)
class _Options:
    """How one build was asked to run, as :func:`build` took it."""

    installer: str | None
    procfile: Path | None
    snapshot: bool
    require_processes: bool
    config: Mapping[str, str]


def _build_in(
    work: Path, settings: Settings, log: BuildLog, app: str, slug_id: str, options: _Options
) -> Slug:
    installer, procfile, config = options.installer, options.procfile, options.config
    with log.step("Detecting the app"):
        detection = detect(work)
        log.retitle(f"Detected Python app ({detection.manifest})")
    with log.step("Choosing Python"):
        request = python_request(work, detection.pyproject, settings.default_python)
        interpreter = find_interpreter(
            request, installed_interpreters(settings.pyenv_root, uv_bin())
        )
        log.retitle(f"Using Python {interpreter.version} (from {request.origin})")
    chosen = _choose_installer(installer, detection.corral_options)
    found = process_types(work, procfile, required=options.require_processes)  # before installs
    with log.step(f"Installing dependencies with {chosen}"):
        environment = ensure_environment(
            settings, work, detection, interpreter, chosen, log, config
        )
        if environment.reused:
            log.retitle(f"Using cached environment {environment.hash[:8]}")
        else:
            log.retitle(f"Installed {len(environment.freeze)} packages with {chosen}")
    pythonpath: list[str] = []
    if options.snapshot:
        base = installer_environ(settings, config)
        env = step_environ(base, config, environment, work)
        pythonpath = install_project(work, detection, environment, chosen, env, log)
        env = step_environ(base, config, environment, work)  # again: now with the project
        collectstatic(work, environment, env, log)
        post_compile(work, env, log)
    elif detection.installs_project:
        log.warn("The project itself is not installed for local runs; it runs from source.")
    names = ", ".join(found.commands) or "none"
    with log.step(f"Discovering process types: {names}"):
        if found.inferred_from:
            log.detail(f"No Procfile; inferred web from the {found.inferred_from}:")
            log.detail(f"  web: {found.commands['web']}")
        for warning in missing_programs(found.commands, environment, pythonpath):
            log.warn(warning)
    return Slug(
        id=slug_id,
        app=app,
        path=work,
        env_path=environment.path,
        env_hash=environment.hash,
        python_version=str(interpreter.version),
        installer=chosen,
        process_types=found.commands,
        inferred=list(found.commands) if found.inferred_from else [],
        pythonpath=pythonpath,
        freeze=environment.freeze,
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        steps=log.steps,
        warnings=log.warnings,
    )
