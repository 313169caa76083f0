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

from corral.appusers import AppUser
from corral.builder.detect import detect
from corral.builder.environment import INSTALLERS, ensure_environment, installer_environ, uv_bin
from corral.builder.log import BuildLog, Emit, hidden_values
from corral.builder.node import node_assets, node_for
from corral.builder.ownership import give, runnable_copy, seal, slug_modes
from corral.builder.procfile import process_types
from corral.builder.python import (
    Interpreter,
    PythonRequest,
    find_interpreter,
    installed_interpreters,
    newer_patch,
    python_request,
    runnable_interpreters,
)
from corral.builder.slug import METADATA, Slug, refuse_oversized, write_metadata
from corral.builder.source import copy_source, make_read_only, remove_tree
from corral.builder.steps import (
    collectstatic,
    compile_hook,
    install_project,
    missing_programs,
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
    run_as: AppUser | None = None,
) -> Slug:
    """Build ``source`` into a slug and return it; a failed build leaves nothing behind.

    With ``snapshot=False`` (``corral local``) the source is not copied: the slug points
    at ``source`` itself and framework steps that write into it are skipped. With
    ``require_processes=False`` an app with no Procfile and nothing to infer still builds
    (for one-off commands), with no process types. ``config`` (the app's config vars)
    reaches the installers and framework steps; its values never reach the output.
    ``run_as`` (isolation): every installer and step runs as the app's user, in a work
    directory of its own, and the slug and environment are sealed before they are used.
    """
    if run_as is not None and not snapshot:
        raise ValueError("an isolated build always makes a snapshot")
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
        if run_as is not None:
            _prepare_isolated(settings, final.parent, run_as)
    try:
        if snapshot:
            detect(source)  # refuse empty or unknown sources before copying anything
            with log.step("Copying source into the slug"):
                snap = copy_source(source, work, warn=log.warn)
                log.retitle(f"Copied {snap.files} files into the slug")
            if run_as is not None:
                give(work, run_as)  # the build's to write while it runs, then sealed
            digest = snap.digest
        else:
            digest = ""
        options = _Options(installer, procfile, snapshot, require_processes, config, run_as)
        slug = _build_in(work, settings, log, app, slug_id, options)
        slug = replace(
            slug,
            path=final,
            pythonpath=[str(final / Path(p).relative_to(work)) for p in slug.pythonpath],
            source_digest=digest,
            build_seconds=round(time.monotonic() - started, 3),
        )
        if snapshot:
            if run_as is not None:
                _seal_slug(work, run_as, log)
            refuse_oversized(work, slug.env_path, settings.slug_max_mb)
            write_metadata(slug, work)
            if run_as is None:
                make_read_only(work)
            else:
                _seal_slug(work / METADATA.parent, run_as, log)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.rename(work, final)
    except BaseException:
        if snapshot:
            remove_tree(work)
        raise
    return slug


def _prepare_isolated(settings: Settings, slugs_dir: Path, run_as: AppUser) -> None:
    """The app's slugs directory: its group may enter it, others not, nobody but root
    writes; and the shared installer cache of unisolated builds is closed to app users."""
    slugs_dir.mkdir(parents=True, exist_ok=True)
    os.chown(slugs_dir, 0, run_as.gid)
    slugs_dir.chmod(0o750)
    if settings.cache_dir.is_dir():
        settings.cache_dir.chmod(0o700)


def _seal_slug(tree: Path, run_as: AppUser, log: BuildLog) -> None:
    """Seal the slug (or its metadata directory) and clear the way for root's own writes:
    a metadata path the app's code made a link (to ``/etc``, say) is removed, not followed."""
    for dropped in seal(tree, run_as.uid, slug_modes(run_as.gid)):
        log.warn(f"{dropped} was not the build's own file; it was left out of the slug.")
    for path in (tree / METADATA, tree / METADATA.parent):
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            path.unlink()


def _choose_installer(requested: str | None, options: dict) -> str:
    installer = requested or options.get("installer") or "uv"
    if installer not in INSTALLERS:
        raise BuildError(
            f"Unknown installer {installer!r} in [tool.corral]; use one of: "
            + ", ".join(INSTALLERS)
            + "."
        )
    return installer


def _choose_python(
    settings: Settings, request: PythonRequest, run_as: AppUser | None, log: BuildLog
) -> Interpreter:
    """The interpreter for ``request``; as ``run_as``, only one that user can run."""
    found = installed_interpreters(settings.pyenv_root, uv_bin())
    usable, skipped = found, dict[Interpreter, str]()
    if run_as is not None:
        usable, skipped = runnable_interpreters(found, run_as)
    for why in dict.fromkeys(skipped.values()):
        versions = ", ".join(str(i.version) for i, reason in skipped.items() if reason == why)
        log.detail(f"Skipped Python {versions}: {why}")
    chosen = find_interpreter(request, usable, tuple(skipped))
    if (newer := newer_patch(chosen, usable)) is not None:
        minor = ".".join(map(str, chosen.version.release[:2]))
        log.warn(
            f"Python {chosen.version} (from {request.origin}) is older than {newer.version}, "
            f"the newest {minor} on this host; ask for {minor} to get its latest fixes."
        )
    return chosen


def _node_cache(settings: Settings, app: str, run_as: AppUser | None) -> Path:
    """Where an app's npm cache and cached ``node_modules`` live: the app's own."""
    return (run_as.cache if run_as is not None else settings.cache_dir / "apps" / app) / "node"


def _keeps_node_modules(options: dict) -> bool:
    keep = options.get("keep-node-modules", False)
    if not isinstance(keep, bool):
        raise BuildError("keep-node-modules in [tool.corral] must be true or false.")
    return keep


@dataclass(frozen=True)
class _Options:
    """How one build was asked to run, as :func:`build` took it."""

    installer: str | None
    procfile: Path | None
    snapshot: bool
    require_processes: bool
    config: Mapping[str, str]
    run_as: AppUser | None


def _build_in(
    work: Path, settings: Settings, log: BuildLog, app: str, slug_id: str, options: _Options
) -> Slug:
    installer, procfile, config = options.installer, options.procfile, options.config
    run_as = options.run_as
    if options.snapshot:  # before anything is read: the hook may write requirements.txt
        hook_env = {**installer_environ(settings, config, run_as, all_config=True),
                    "PYTHONUNBUFFERED": "1"}  # fmt: skip
        compile_hook("pre_compile", work, hook_env, log, run_as)
    with log.step("Detecting the app"):
        detection = detect(work)
        log.retitle(f"Detected Python app ({detection.manifest})")
    with log.step("Choosing Python"):
        request = python_request(work, detection.pyproject, settings.default_python)
        interpreter = _choose_python(settings, request, run_as, log)
        log.retitle(f"Using Python {interpreter.version} (from {request.origin})")
    node = node_for(work) if options.snapshot else None  # engines.node: before installing
    uv = uv_bin() if run_as is None else runnable_copy(uv_bin(), run_as, settings.home / "tools")
    chosen = _choose_installer(installer, detection.corral_options)
    found = process_types(work, procfile, required=options.require_processes)  # before installs
    with log.step(f"Installing dependencies with {chosen}"):
        environment = ensure_environment(
            settings, work, detection, interpreter, chosen, log, config, run_as=run_as, uv=uv
        )
        if environment.reused:
            log.retitle(f"Using cached environment {environment.hash[:8]}")
        else:
            log.retitle(f"Installed {len(environment.freeze)} packages with {chosen}")
    pythonpath: list[str] = []
    if options.snapshot:
        base = installer_environ(settings, config, run_as, all_config=True)
        env = step_environ(base, config, environment, work)
        pythonpath = install_project(
            work, detection, environment, chosen, env, log, uv=uv, run_as=run_as
        )
        env = step_environ(base, config, environment, work)  # again: now with the project
        if node is not None:
            keep = _keeps_node_modules(detection.corral_options)
            cache = _node_cache(settings, app, run_as)
            node_assets(work, node, env, log, cache=cache, keep=keep, run_as=run_as)
        collectstatic(work, environment, env, log, run_as)
        compile_hook("post_compile", work, env, log, run_as)
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
