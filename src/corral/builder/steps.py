"""Steps run inside a slug after its environment is ready: project install, framework hooks."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path

from corral.appusers import AppUser
from corral.builder.detect import Detection
from corral.builder.environment import Diagnose, Diagnosis, Environment, run_streaming, uv_bin
from corral.builder.log import BuildLog
from corral.builder.slug import BASE_PATH

#: Where a slug's own package is installed when the app is itself a package.
SITE = Path(".corral") / "site"


def step_environ(
    base: dict[str, str], config: Mapping[str, str], environment: Environment, slug_dir: Path
) -> dict[str, str]:
    """Environment for commands run in the slug at build time: the installers' ``base``, the
    app's config vars as dynos get them, and its virtualenv first on PATH."""
    env = dict(base)
    # base drops PYTHON* (they would steer the installers); the app's own ones count here
    env.update({k: v for k, v in config.items() if k.startswith("PYTHON") and k != "PYTHONHOME"})
    env["VIRTUAL_ENV"] = str(environment.path)
    env["PATH"] = os.pathsep.join([str(environment.path / "bin"), env.get("PATH", os.defpath)])
    site = slug_dir / SITE
    if site.is_dir():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), config.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def install_project(
    slug_dir: Path,
    detection: Detection,
    environment: Environment,
    installer: str,
    env: dict[str, str],
    log: BuildLog,
    *,
    uv: str | None = None,
    run_as: AppUser | None = None,
) -> list[str]:
    """Install the app's own package into the slug (not the shared environment).

    The environment holds only dependencies, so a code change never needs a new one;
    the package goes to ``.corral/site``, which runs put first on ``PYTHONPATH``.
    """
    if not detection.installs_project:
        return []
    target = slug_dir / SITE
    with log.step("Installing the project itself"):
        if installer == "pip":
            command = [str(environment.python), "-m", "pip", "install"]
        else:
            command = [uv or uv_bin(), "pip", "install", "--python", str(environment.python)]
        command += ["--no-deps", "--target", str(target), "."]
        what = "Installing the project"
        run_streaming(command, cwd=slug_dir, env=env, log=log, what=what, run_as=run_as)
    return [str(target)]


def _has_package(environment: Environment, name: str) -> bool:
    prefix = name.lower() + "=="
    return any(line.lower().startswith(prefix) for line in environment.freeze)


_SETTINGS_DEFAULT = re.compile(r"""["']DJANGO_SETTINGS_MODULE["']\s*,\s*["']([\w.]+)["']""")


def static_root_line(settings_text: str) -> str:
    """The ``STATIC_ROOT`` line to add to a settings file, in the style of its ``BASE_DIR``.

    ``BASE_DIR`` is a ``Path`` in projects started with Django 3.1 or later, a ``str``
    built with ``os.path`` before.
    """
    if re.search(r"^BASE_DIR\s*=\s*os\.path", settings_text, re.MULTILINE):
        return 'STATIC_ROOT = os.path.join(BASE_DIR, "staticfiles")'
    return 'STATIC_ROOT = BASE_DIR / "staticfiles"'


def _settings_file(slug_dir: Path, env: Mapping[str, str]) -> Path | None:
    """The project's settings file, from ``DJANGO_SETTINGS_MODULE`` or ``manage.py``'s default."""
    module = env.get("DJANGO_SETTINGS_MODULE")
    if not module:
        match = _SETTINGS_DEFAULT.search((slug_dir / "manage.py").read_text(errors="replace"))
        module = match.group(1) if match else None
    if not module:
        return None
    base = Path(*module.split("."))
    for candidate in (base.with_name(base.name + ".py"), base / "__init__.py"):
        if (slug_dir / candidate).is_file():
            return candidate
    return None


def _diagnose_collectstatic(slug_dir: Path, env: Mapping[str, str]) -> Diagnose:
    def diagnose(traceback: list[str]) -> Diagnosis | None:
        if not any("ImproperlyConfigured" in ln and "STATIC_ROOT" in ln for ln in traceback):
            return None
        found = _settings_file(slug_dir, env)
        where = str(found) if found else "your settings module"
        line = static_root_line((slug_dir / found).read_text(errors="replace") if found else "")
        return Diagnosis(
            lines=(
                f"STATIC_ROOT is not set, so collectstatic has nowhere to put the files; "
                f"add this line to {where}:",
                f"    {line}",
            ),
            message=(
                f"collectstatic failed: STATIC_ROOT is not set; add `{line}` to {where}, "
                "or skip collectstatic with `corral config:set DISABLE_COLLECTSTATIC=1`."
            ),
        )

    return diagnose


def collectstatic(
    slug_dir: Path,
    environment: Environment,
    env: dict[str, str],
    log: BuildLog,
    run_as: AppUser | None = None,
) -> None:
    """Django's ``collectstatic`` for Django projects; DISABLE_COLLECTSTATIC=1 skips it."""
    if not (slug_dir / "manage.py").is_file() or not _has_package(environment, "django"):
        return
    if env.get("DISABLE_COLLECTSTATIC", "0") not in ("", "0"):
        log.detail("Skipping collectstatic (DISABLE_COLLECTSTATIC is set)")
        return
    with log.step("Running Django collectstatic"):
        command = [str(environment.python), "manage.py", "collectstatic", "--noinput"]
        run_streaming(
            command,
            cwd=slug_dir,
            env=env,
            log=log,
            what="collectstatic (set DISABLE_COLLECTSTATIC=1 to skip it)",
            diagnose=_diagnose_collectstatic(slug_dir, env),
            run_as=run_as,
        )


def compile_hook(
    name: str, slug_dir: Path, env: dict[str, str], log: BuildLog, run_as: AppUser | None = None
) -> None:
    """Run the app's ``bin/<name>`` hook (``pre_compile``, ``post_compile``) when it has one."""
    hook = slug_dir / "bin" / name
    if not hook.is_file():
        return
    with log.step(f"Running bin/{name}"):
        command = [str(hook)] if os.access(hook, os.X_OK) else ["/bin/sh", str(hook)]
        what = f"bin/{name}"
        run_streaming(command, cwd=slug_dir, env=env, log=log, what=what, run_as=run_as)


def missing_programs(
    commands: dict[str, str], environment: Environment, pythonpath: list[str]
) -> list[str]:
    """Warnings for process types whose program is installed neither in the env nor on PATH.

    Looked up where a dyno will look (the slug's own ``bin`` directories, then the dynos'
    base PATH), never on the caller's PATH: a gunicorn there is not in the slug.
    """
    search = os.pathsep.join(
        [
            str(environment.path / "bin"),
            *(os.path.join(p, "bin") for p in pythonpath),
            BASE_PATH,
        ]
    )
    warnings = []
    for name, command in commands.items():
        try:
            words = shlex.split(command)
        except ValueError:
            continue
        words = [w for w in words if "=" not in w.split("/")[0]]  # skip VAR=value prefixes
        if not words or words[0].startswith(("$", "./", "/")) or words[0] in ("exec", "env"):
            continue
        if shutil.which(words[0], path=search) is None:
            warnings.append(
                f"{name} starts {words[0]!r}, which is not installed in the environment; "
                "add it to your dependencies."
            )
    return warnings
