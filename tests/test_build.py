"""Real builds of real apps: each slug's web process is started and must answer 200 on /."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packaging.version import Version

from corral.builder import build
from corral.builder.environment import uv_bin
from corral.builder.python import installed_interpreters
from corral.builder.steps import static_root_line
from corral.config import Settings
from support.cli import corral, run_corral
from support.processes import running_process
from support.sources import write
from support.wait import wait_for_http

FLASK_APP = textwrap.dedent(
    """
    import os, sys
    from flask import Flask
    app = Flask(__name__)

    @app.get("/")
    def index():
        return f"hello from python {sys.version_info[0]}.{sys.version_info[1]}"
    """
)

pytestmark = pytest.mark.slow


def serve_ok(slug, expect: str | None = None) -> str:
    """Start the slug's web process and return the body of a 200 from /."""
    with running_process(slug) as (port, process):
        response = wait_for_http(f"http://127.0.0.1:{port}/", process=process)
        assert response.status_code == 200, response.text[:500]
        if expect:
            assert expect in response.text
        return response.text


@pytest.fixture
def settings(corral_home: Path) -> Settings:
    return Settings.load(corral_home)


def flask_app(tmp_path: Path, requirements: str = "flask\ngunicorn\n") -> Path:
    return write(tmp_path / "hello", {"app.py": FLASK_APP, "requirements.txt": requirements})


def test_flask_requirements_app_serves(tmp_path: Path, corral_home: Path) -> None:
    app = flask_app(tmp_path)
    result = run_corral("build", str(app), home=corral_home)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "-----> Detected Python app (requirements.txt)" in result.stdout
    assert "Discovering process types: web" in result.stdout
    assert "inferred web from the Flask app in app.py" in result.stdout
    slug_dirs = list((corral_home / "apps" / "hello" / "slugs").iterdir())
    assert slug_dirs
    slug = build(app, Settings.load(corral_home), emit=lambda _: None)
    assert any(line.startswith("flask==") for line in slug.freeze)
    metadata = json.loads((slug.path / ".corral" / "slug.json").read_text())
    assert metadata["env_hash"] == slug.env_hash and metadata["source_digest"]
    assert not os.access(slug.path / "app.py", os.W_OK) or os.geteuid() == 0
    assert (slug.path / "app.py").stat().st_mode & 0o222 == 0
    serve_ok(slug, "hello from python")


def test_json_output_is_one_object(tmp_path: Path, corral_home: Path) -> None:
    app = flask_app(tmp_path)
    result = run_corral("build", str(app), "--json", home=corral_home)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["process_types"] == {"web": "gunicorn app:app"}
    assert data["python_version"] and data["env_path"].startswith(str(corral_home))
    assert "-----> Detected" in result.stderr  # steps go to stderr with --json


def test_unchanged_dependencies_reuse_the_environment(tmp_path: Path, settings: Settings) -> None:
    app = flask_app(tmp_path)
    first = build(app, settings, emit=lambda _: None)
    (app / "app.py").write_text(FLASK_APP + "\n# a code change\n")
    lines: list[str] = []
    second = build(app, settings, emit=lines.append)
    assert second.env_path == first.env_path and second.id != first.id
    assert any("Using cached environment" in line for line in lines)
    assert not any("Installed" in line or "Resolved" in line for line in lines)
    assert second.source_digest != first.source_digest


def test_removing_a_requirement_removes_the_package(tmp_path: Path, settings: Settings) -> None:
    app = flask_app(tmp_path, "flask\ngunicorn\nsix\n")
    with_six = build(app, settings, emit=lambda _: None)
    assert any(line.startswith("six==") for line in with_six.freeze)
    (app / "requirements.txt").write_text("flask\ngunicorn\n")
    without = build(app, settings, emit=lambda _: None)
    assert without.env_hash != with_six.env_hash
    assert not any(line.startswith("six==") for line in without.freeze)
    check = subprocess.run([str(without.env_path / "bin" / "python"), "-c", "import six"])
    assert check.returncode != 0


def django_project(tmp_path: Path, settings: Settings) -> Path:
    """A fresh `django-admin startproject mysite` (no STATIC_ROOT) needing Django and gunicorn."""
    env = {**os.environ, "UV_CACHE_DIR": str(settings.cache_dir / "uv")}
    site = tmp_path / "site"
    site.mkdir()
    subprocess.run(
        [uv_bin(), "tool", "run", "--from", "django>=4.2,<6", "django-admin", "startproject",
         "mysite", str(site)],
        env=env, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (site / "requirements.txt").write_text("django>=4.2,<6\ngunicorn\n")
    return site


def test_django_project_collects_static_and_serves(tmp_path: Path, settings: Settings) -> None:
    site = django_project(tmp_path, settings)
    settings_py = site / "mysite" / "settings.py"
    settings_py.write_text(settings_py.read_text() + "\nSTATIC_ROOT = BASE_DIR / 'staticfiles'\n")
    lines: list[str] = []
    slug = build(site, settings, emit=lines.append)
    assert slug.process_types == {"web": "gunicorn mysite.wsgi"}
    assert any("collectstatic" in line for line in lines)
    assert (slug.path / "staticfiles" / "admin").is_dir()
    serve_ok(slug, "django")


def test_collectstatic_without_static_root_says_which_line_to_add(
    tmp_path: Path, corral_home: Path
) -> None:
    site = django_project(tmp_path, Settings.load(corral_home))
    result = run_corral("build", str(site), home=corral_home)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    line = 'STATIC_ROOT = BASE_DIR / "staticfiles"'
    out = result.stdout
    assert f"add this line to mysite/settings.py:\n           {line}\n" in out, out
    # said before the traceback's tail, which still ends with Django's own words
    raised = "ImproperlyConfigured: You're using the staticfiles app without having set"
    assert out.index(line) < out.index("Traceback (most recent call last)") < out.index(raised)
    assert "lines left out" in out
    error = result.stderr.strip().splitlines()[-1]
    assert error == (
        f"error: collectstatic failed: STATIC_ROOT is not set; add `{line}` to "
        "mysite/settings.py, or skip collectstatic with `corral config:set "
        "DISABLE_COLLECTSTATIC=1`."
    )
    # the advice works: the build sees config vars
    skipped = run_corral("build", str(site), "--env", "DISABLE_COLLECTSTATIC=1", home=corral_home)
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert "Skipping collectstatic (DISABLE_COLLECTSTATIC is set)" in skipped.stdout


def test_static_root_line_follows_the_settings_style() -> None:
    assert static_root_line("BASE_DIR = Path(__file__).resolve().parent.parent\n") == (
        'STATIC_ROOT = BASE_DIR / "staticfiles"'
    )
    old_style = "BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))\n"
    assert static_root_line(old_style) == 'STATIC_ROOT = os.path.join(BASE_DIR, "staticfiles")'


def test_collectstatic_can_be_disabled(tmp_path: Path, settings: Settings) -> None:
    app = write(
        tmp_path / "dj",
        {"requirements.txt": "django>=4.2,<6\n", "manage.py": "raise SystemExit(3)\n"},
    )
    write(app, {"Procfile": "web: python -m http.server $PORT\n"})
    with pytest.raises(Exception, match="collectstatic"):
        build(app, settings, emit=lambda _: None)
    lines: list[str] = []
    build(app, settings, config={"DISABLE_COLLECTSTATIC": "1"}, emit=lines.append)
    assert any("Skipping collectstatic" in line for line in lines)


def test_fastapi_app_is_inferred_and_served_by_uvicorn(tmp_path: Path, settings: Settings) -> None:
    app = write(
        tmp_path / "api",
        {
            "requirements.txt": "fastapi\nuvicorn\n",
            "main.py": """
                from fastapi import FastAPI
                app = FastAPI()

                @app.get("/")
                def index():
                    return {"hello": "asgi"}
            """,
        },
    )
    slug = build(app, settings, emit=lambda _: None)
    assert slug.process_types["web"].startswith("uvicorn main:app")
    assert "asgi" in serve_ok(slug)


def test_pyproject_package_is_installed_into_the_slug(tmp_path: Path, settings: Settings) -> None:
    app = write(
        tmp_path / "pkgapp",
        {
            "pyproject.toml": """
                [project]
                name = "pkgapp"
                version = "0.1.0"
                dependencies = ["flask", "gunicorn"]

                [build-system]
                requires = ["hatchling"]
                build-backend = "hatchling.build"
            """,
            "src/pkgapp/__init__.py": "from flask import Flask\napp = Flask(__name__)\n"
            "app.get('/')(lambda: 'packaged')\n",
            "Procfile": "web: gunicorn pkgapp:app\n",
        },
    )
    lines: list[str] = []
    slug = build(app, settings, emit=lines.append)
    assert "-----> Detected Python app (pyproject.toml) (0.00s)" in lines or any(
        "Detected Python app (pyproject.toml)" in line for line in lines
    )
    assert slug.pythonpath == [str(slug.path / ".corral" / "site")]
    assert "packaged" in serve_ok(slug)
    # the shared environment holds only dependencies; the package lives in the slug
    assert not any(line.startswith("pkgapp") for line in slug.freeze)


def test_uv_lock_app_installs_exactly_the_lock(tmp_path: Path, settings: Settings) -> None:
    app = write(
        tmp_path / "locked",
        {
            "pyproject.toml": """
                [project]
                name = "locked"
                version = "0.1.0"
                requires-python = ">=3.9"
                dependencies = ["flask==3.1.*", "gunicorn"]
            """,
            "app.py": FLASK_APP,
        },
    )
    env = {**os.environ, "UV_CACHE_DIR": str(settings.cache_dir / "uv")}
    subprocess.run([uv_bin(), "lock"], cwd=app, env=env, check=True, capture_output=True)
    lines: list[str] = []
    slug = build(app, settings, emit=lines.append)
    assert any("Detected Python app (uv.lock)" in line for line in lines)
    lock = (app / "uv.lock").read_text()
    flask_line = next(line for line in slug.freeze if line.startswith("flask=="))
    assert f'version = "{flask_line.split("==")[1]}"' in lock
    serve_ok(slug)


def test_stale_uv_lock_fails_the_build(tmp_path: Path, settings: Settings) -> None:
    app = write(
        tmp_path / "stale",
        {
            "pyproject.toml": '[project]\nname = "stale"\nversion = "0.1.0"\n'
            'requires-python = ">=3.9"\ndependencies = ["flask"]\n',
            "app.py": FLASK_APP,
        },
    )
    env = {**os.environ, "UV_CACHE_DIR": str(settings.cache_dir / "uv")}
    subprocess.run([uv_bin(), "lock"], cwd=app, env=env, check=True, capture_output=True)
    (app / "pyproject.toml").write_text(
        (app / "pyproject.toml").read_text().replace('["flask"]', '["flask", "six"]')
    )
    result = run_corral("build", str(app), home=settings.home)
    assert result.returncode == 1
    assert "lockfile" in (result.stdout + result.stderr).lower()
    assert "Traceback" not in result.stderr


def two_python_versions() -> list[str]:
    found = installed_interpreters(Settings.load().pyenv_root, uv_bin())
    minors: dict[str, str] = {}
    for interp in found:
        if interp.version >= Version("3.9"):
            minors.setdefault(f"{interp.version.major}.{interp.version.minor}", "")
    return list(minors)[:2]


def test_two_apps_on_two_pythons_side_by_side(tmp_path: Path, settings: Settings) -> None:
    versions = two_python_versions()
    if len(versions) < 2:
        pytest.skip("needs two Python versions >= 3.9 installed (pyenv or uv)")
    slugs = []
    for version in versions:
        app = flask_app(tmp_path / version)
        (app / ".python-version").write_text(version + "\n")
        slugs.append(build(app, settings, app=f"py{version.replace('.', '')}", emit=print))
    assert slugs[0].env_path != slugs[1].env_path
    with running_process(slugs[0]) as (port_a, proc_a), running_process(slugs[1]) as (port_b, _):
        body_a = wait_for_http(f"http://127.0.0.1:{port_a}/", process=proc_a).text
        body_b = wait_for_http(f"http://127.0.0.1:{port_b}/").text
    assert body_a.endswith(versions[0]) and body_b.endswith(versions[1])


def test_pip_installer_on_request(tmp_path: Path, settings: Settings) -> None:
    app = flask_app(tmp_path)
    (app / "pyproject.toml").write_text('[tool.corral]\ninstaller = "pip"\n')
    lines: list[str] = []
    slug = build(app, settings, emit=lines.append)
    assert slug.installer == "pip"
    assert any("with pip" in line for line in lines)
    serve_ok(slug)


def test_setup_py_app_builds_and_serves(tmp_path: Path, settings: Settings) -> None:
    app = write(
        tmp_path / "legacy",
        {
            "setup.py": """
                from setuptools import setup
                setup(name="legacy", version="1.0", py_modules=["legacy"],
                      install_requires=["flask", "gunicorn"])
            """,
            "legacy.py": "from flask import Flask\napp = Flask(__name__)\n"
            "app.get('/')(lambda: 'from setup.py')\n",
            "Procfile": "web: gunicorn legacy:app\n",
        },
    )
    lines: list[str] = []
    slug = build(app, settings, emit=lines.append)
    assert any("Detected Python app (setup.py)" in line for line in lines)
    assert any(line.startswith("flask==") for line in slug.freeze)
    assert "from setup.py" in serve_ok(slug)


def test_warns_when_web_starts_a_program_not_installed(tmp_path: Path, corral_home: Path) -> None:
    app = flask_app(tmp_path, "flask\n")
    (app / "Procfile").write_text("web: gunicorn app:app\nworker: python -c pass\n")
    # the caller has a gunicorn (this test run's own, as the README's PATH gives); the app not
    tools = Path(sys.executable).parent
    assert (tools / "gunicorn").is_file()
    path = os.pathsep.join([str(tools), os.environ.get("PATH", os.defpath)])
    env = {**os.environ, "CORRAL_HOME": str(corral_home), "PATH": path}
    result = corral("build", str(app), env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "web starts 'gunicorn', which is not installed in the environment" in result.stdout
    assert "worker starts" not in result.stdout


def test_output_directory_holds_the_slug(tmp_path: Path, corral_home: Path) -> None:
    app = flask_app(tmp_path)
    out = tmp_path / "out"
    result = run_corral("build", str(app), "--output", str(out), "--json", home=corral_home)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["path"] == str(out)
    assert (out / "app.py").is_file() and (out / ".corral" / "slug.json").is_file()
    again = run_corral("build", str(app), "--output", str(out), home=corral_home)
    assert again.returncode == 1 and "already exists" in again.stderr
