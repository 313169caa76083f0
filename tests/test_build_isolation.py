"""Isolated builds: installers and hooks run as the app's own user, the slug and
environment they make are sealed, and one app's build cannot change what another runs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from corral.appusers import AppUser, AppUsers
from corral.builder import Slug, _choose_python, build
from corral.builder.log import BuildLog
from corral.builder.python import python_request
from corral.builder.tools import ensure_tool
from corral.config import Settings
from corral.errors import BuildError, PythonNotFound
from support.isolation import needs_root, unique_prefix, users_removed
from support.sources import backend_package, write

pytestmark = [needs_root, pytest.mark.slow]

#: A build backend that runs the app's code at install time (what a ``setup.py`` does):
#: it tries every write in targets.json, prints what happened, and fails the install.
ATTACKING_BACKEND = """
import json, pathlib

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    targets = json.loads(pathlib.Path(__file__).with_name("targets.json").read_text())
    for name, path in targets.items():
        try:
            pathlib.Path(path).write_text("poisoned\\n")
            print(f"ATTACK {name}: succeeded", flush=True)
        except OSError as exc:
            print(f"ATTACK {name}: {exc.strerror}", flush=True)
    raise SystemExit(1)
"""

#: The same attack from ``bin/post_compile``, as a build that otherwise succeeds.
ATTACKING_HOOK = """
#!/bin/sh
for target in $(cat targets.txt); do
  name=${target%%=*}; path=${target#*=}
  if (echo poisoned > "$path") 2>err.txt; then echo "ATTACK $name: succeeded"
  else echo "ATTACK $name: $(sed 's/.*: //' err.txt)"; fi
done
"""


def small_app(root: Path, **extra: str) -> Path:
    """An app with one tiny pure-Python dependency and a web process that imports it."""
    files = {
        "requirements.txt": "six\n",
        "app.py": "import six\nprint('six', six.__version__, six.__file__)\n",
        "Procfile": "web: python app.py\n",
        **extra,
    }
    app = write(root, files)
    if (app / "bin" / "post_compile").exists():
        (app / "bin" / "post_compile").chmod(0o755)
    return app


@pytest.fixture
def iso() -> Iterator[Settings]:
    """Settings of an isolated home other users can enter (pytest's tmp dirs are 0700)."""
    home = Path(tempfile.mkdtemp(prefix="corral-iso-", dir="/tmp"))
    home.chmod(0o711)
    try:
        with users_removed(unique_prefix()) as prefix:
            yield replace(
                Settings.load(home), isolation=True, user_prefix=prefix, uid_range=(45000, 45999)
            )
    finally:
        shutil.rmtree(home, ignore_errors=True)


def isolated_build(settings: Settings, app: str, source: Path) -> tuple[Slug, AppUser, str]:
    user = AppUsers(settings).ensure(app)
    lines: list[str] = []
    slug = build(source, settings, app=app, emit=lines.append, run_as=user)
    return slug, user, "\n".join(lines)


def tree_digest(root: Path) -> str:
    """Names, owners, modes and contents of everything under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        name = path.relative_to(root)
        digest.update(f"{name} {info.st_uid} {info.st_gid} {info.st_mode}".encode())
        if path.is_symlink():
            digest.update(os.readlink(path).encode())
        elif path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def run_web_as(slug: Slug, user: AppUser) -> str:
    """What the slug's web process prints, run as ``user`` the way a dyno runs it."""
    out = subprocess.run(
        [str(slug.env_path / "bin" / "python"), "app.py"],
        cwd=slug.path,
        env={"PATH": f"{slug.env_path}/bin:/usr/bin:/bin", "HOME": str(user.home)},
        capture_output=True,
        text=True,
        check=False,
        **user.popen(),  # type: ignore[arg-type]
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def assert_sealed(root: Path, gid: int, *, others: int) -> None:
    """Everything under ``root`` is root's and group ``gid``'s, with no write bit anywhere
    and no more than ``others`` for other users."""
    for path in [root, *root.rglob("*")]:
        info = path.lstat()
        assert info.st_uid == 0, path
        if path.is_symlink():
            continue
        assert info.st_gid == gid, path
        assert info.st_mode & 0o222 == 0, f"{path} is writable ({oct(info.st_mode)})"
        assert info.st_mode & 0o007 & ~others == 0, f"{path}: {oct(info.st_mode)}"


def test_isolated_build_runs_as_the_app_user_and_seals_slug_and_environment(iso: Settings):
    hook = '#!/bin/sh\nid -u > built-by.txt\necho "HOME=$HOME"\n'
    source = small_app(Path(tempfile.mkdtemp(dir=iso.home)), **{"bin/post_compile": hook})
    slug, user, output = isolated_build(iso, "alpha", source)
    assert int((slug.path / "built-by.txt").read_text()) == user.uid
    assert f"HOME={user.home}" in output
    assert_sealed(slug.path, user.gid, others=0)
    slugs = iso.slugs_dir("alpha").stat()
    assert (slugs.st_uid, slugs.st_gid, slugs.st_mode & 0o777) == (0, user.gid, 0o750)
    assert_sealed(slug.env_path, 0, others=0o5)
    assert iso.envs_dir.stat().st_mode & 0o777 == 0o711
    assert (user.cache / "uv").is_dir()  # the app's own cache, not the shared one
    assert not (iso.cache_dir / "uv").exists()
    assert run_web_as(slug, user).startswith("six 1.")
    # compiled at the build: the dyno cannot write the sealed environment's __pycache__
    assert list(slug.env_path.glob("lib/python*/site-packages/__pycache__/six.*.pyc"))
    nobody = subprocess.run(
        ["/bin/ls", str(slug.path)], capture_output=True, user=65534, group=65534, check=False
    )
    assert nobody.returncode != 0 and b"Permission denied" in nobody.stderr


def test_one_apps_build_cannot_change_what_another_app_builds_or_runs(iso: Settings):
    root = Path(tempfile.mkdtemp(dir=iso.home))
    bravo_slug, bravo, _ = isolated_build(iso, "bravo", small_app(root / "bravo"))
    before = {
        "env": tree_digest(bravo_slug.env_path),
        "slug": tree_digest(bravo_slug.path),
        "web": run_web_as(bravo_slug, bravo),
    }
    (iso.cache_dir / "uv").mkdir(parents=True)  # the shared cache of unisolated builds
    six = next(bravo_slug.env_path.rglob("six.py"))
    targets = {
        "shared-cache": iso.cache_dir / "uv" / "planted.py",
        "bravo-env": six,
        "bravo-env-new": six.with_name("sitecustomize.py"),
        "bravo-slug": bravo_slug.path / "app.py",
        "bravo-cache": bravo.cache / "uv" / "planted.py",
        "same-hash-env": iso.envs_dir / bravo_slug.env_hash / "planted",
        "future-env": iso.envs_dir / ("0" * 16),
    }
    # from a local package's build backend (a setup.py): the install fails
    evil = {
        "requirements.txt": "six\n./evil\n",
        **backend_package("evil", ATTACKING_BACKEND),
        "evil/targets.json": json.dumps({k: str(v) for k, v in targets.items()}),
    }
    lines: list[str] = []
    alpha = AppUsers(iso).ensure("alpha")
    with pytest.raises(BuildError):
        build(small_app(root / "alpha", **evil), iso, app="alpha", emit=lines.append, run_as=alpha)
    # and from bin/post_compile: the build succeeds, every write fails
    hook = {
        "bin/post_compile": ATTACKING_HOOK,
        "targets.txt": "\n".join(f"{k}={v}" for k, v in targets.items()) + "\n",
    }
    _, _, hook_output = isolated_build(iso, "alpha", small_app(root / "alpha-hook", **hook))
    for output in ("\n".join(lines), hook_output):
        for name in targets:
            assert f"ATTACK {name}: Permission denied" in output, output
    assert not (iso.cache_dir / "uv" / "planted.py").exists()
    again, _, output = isolated_build(iso, "bravo", small_app(root / "bravo"))
    assert again.env_hash == bravo_slug.env_hash and "Using cached environment" in output
    assert tree_digest(again.env_path) == before["env"]
    assert tree_digest(bravo_slug.path) == before["slug"]
    assert run_web_as(again, bravo) == run_web_as(bravo_slug, bravo) == before["web"]


def test_a_python_only_an_unreachable_interpreter_has_fails_saying_how_to_fix_it(iso: Settings):
    hidden = Path(tempfile.mkdtemp(dir="/tmp"))  # 0700: app users cannot enter it
    try:
        fake = hidden / "versions" / "3.11.99" / "bin" / "python3"
        fake.parent.mkdir(parents=True)
        fake.symlink_to("/usr/bin/python3")
        settings = replace(iso, pyenv_root=hidden)
        source = small_app(Path(tempfile.mkdtemp(dir=iso.home)), **{".python-version": "3.11.99"})
        lines: list[str] = []
        user = AppUsers(settings).ensure("alpha")
        with pytest.raises(PythonNotFound) as failed:
            build(source, settings, app="alpha", emit=lines.append, run_as=user)
        message = failed.value.message
        assert "installed only where app users cannot run it" in message
        assert "UV_PYTHON_INSTALL_DIR" in message and message.count(".") >= 1
        assert f"Skipped Python 3.11.99: app users cannot enter {hidden}" in "\n".join(lines)
        assert [p.name for p in settings.slugs_dir("alpha").iterdir()] == []
    finally:
        shutil.rmtree(hidden)


def test_links_a_build_plants_never_make_root_write_or_chmod_outside_the_slug(iso: Settings):
    victims = Path(tempfile.mkdtemp(dir=iso.home))
    victim = victims / "root-only.conf"
    victim.write_text("root's\n")
    victim.chmod(0o600)
    hook = f"""
        #!/bin/sh
        mkdir -p .corral && ln -s {victim} .corral/slug.json
        ln -s {victim} linked.conf && ln -s {victims} linked-dir
    """
    source = small_app(Path(tempfile.mkdtemp(dir=iso.home)), **{"bin/post_compile": hook})
    slug, _, _ = isolated_build(iso, "alpha", source)
    assert victim.read_text() == "root's\n"
    assert (victim.stat().st_uid, victim.stat().st_mode & 0o777) == (0, 0o600)
    assert victims.stat().st_mode & 0o777 == 0o700
    assert json.loads((slug.path / ".corral" / "slug.json").read_text())["app"] == "alpha"
    assert (slug.path / "linked.conf").is_symlink()  # kept as a link, the target untouched


def test_a_poetry_app_builds_as_its_user_with_a_tool_it_cannot_change(iso: Settings):
    source = small_app(Path(tempfile.mkdtemp(dir=iso.home)))
    (source / "requirements.txt").unlink()
    (source / "pyproject.toml").write_text(
        '[project]\nname = "p"\nversion = "1"\nrequires-python = ">=3.9"\n'
        'dependencies = ["six"]\n[tool.poetry]\npackage-mode = false\n'
    )
    user = AppUsers(iso).ensure("poet")
    python = _choose_python(
        iso, python_request(source, {}, iso.default_python), user, BuildLog(print)
    )
    poetry = ensure_tool(iso, "poetry", python, BuildLog(print))
    env = {**os.environ, "POETRY_CACHE_DIR": str(iso.home / "test-poetry-cache")}
    subprocess.run([str(poetry), "lock"], cwd=source, env=env, check=True, capture_output=True)
    slug, user, output = isolated_build(iso, "poet", source)
    assert "Detected Python app (poetry.lock)" in output
    assert run_web_as(slug, user).startswith("six 1.")
    assert_sealed(poetry.parent.parent, 0, others=0o5)
    assert not (iso.cache_dir / "poetry").exists()  # the app's own cache, if any, not a shared one


def test_npm_runs_as_the_app_user_with_its_own_cache(iso: Settings):
    source = small_app(Path(tempfile.mkdtemp(dir=iso.home)))
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(source.parent),
        "npm_config_cache": str(source.parent / "npm"),
    }
    build_script = "scripts.build=id -u > built-by-npm.txt"
    for args in (["init", "-y"], ["install", "is-number@7"], ["pkg", "set", build_script]):
        subprocess.run(["npm", *args], cwd=source, env=env, check=True, capture_output=True)
    shutil.rmtree(source / "node_modules")
    slug, user, output = isolated_build(iso, "noder", source)
    assert "Installing Node.js packages with npm ci" in output
    assert int((slug.path / "built-by-npm.txt").read_text()) == user.uid
    assert_sealed(slug.path, user.gid, others=0)
    cached = user.cache / "node" / "node_modules"
    assert (
        cached.stat().st_uid == user.uid and (user.cache / "node" / "npm").stat().st_uid == user.uid
    )
    again, _, output = isolated_build(iso, "noder", source)
    assert "Using cached node_modules" in output and not (again.path / "node_modules").exists()
