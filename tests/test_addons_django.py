"""The issue's proof with Django: a project reading ``DATABASE_URL`` with dj-database-url,
``release: python manage.py migrate``, gets ``addons:create postgresql``, deploys, creates
a row through the app, keeps it across a restart of the platform and a ``kill -9`` of
PostgreSQL, and a backup brings it back after its table is dropped."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from support.addons import needs_postgresql
from support.cli import corral
from support.isolation import needs_root, unique_prefix, users_removed
from support.server import Server, git, isolated_server, start_server
from support.wait import wait_until

pytestmark = [needs_root, needs_postgresql]

FILES = {
    "requirements.txt": "django>=5,<6\ndj-database-url\npsycopg[binary]\ngunicorn\n",
    "Procfile": "release: python manage.py migrate --noinput\nweb: gunicorn site_app.wsgi\n",
    "manage.py": """import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_app.settings")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
""",
    "site_app/__init__.py": "",
    "site_app/settings.py": """import dj_database_url
from pathlib import Path
BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.staticfiles", "notes"]
ROOT_URLCONF = "site_app.urls"
DATABASES = {"default": dj_database_url.config(conn_max_age=60)}
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
USE_TZ = True
""",
    "site_app/urls.py": """from django.urls import path
from notes import views
urlpatterns = [path("", views.index), path("notes", views.add)]
""",
    "site_app/wsgi.py": """import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_app.settings")
from django.core.wsgi import get_wsgi_application
application = get_wsgi_application()
""",
    "notes/__init__.py": "",
    "notes/models.py": """from django.db import models
class Note(models.Model):
    body = models.TextField()
""",
    "notes/migrations/__init__.py": "",
    "notes/migrations/0001_initial.py": """from django.db import migrations, models
class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [migrations.CreateModel("Note", [
        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False)),
        ("body", models.TextField()),
    ])]
""",
    "notes/views.py": """from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from notes.models import Note
def index(request):
    return HttpResponse(",".join(n.body for n in Note.objects.order_by("body")) or "empty")
@csrf_exempt
def add(request):
    Note.objects.create(body=request.body.decode())
    return HttpResponse("ok")
""",
}


@pytest.fixture(scope="module")
def platform() -> Iterator[Server]:
    """A platform as root with apps isolated, for this module."""
    with users_removed(unique_prefix()) as prefix, isolated_server(prefix) as running:
        yield running


def _ok(server: Server, *args: str) -> str:
    done = corral(*args, env=server.env, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _answer(server: Server) -> str:
    try:
        return server.app_get("blog").text
    except httpx.TransportError:
        return ""


def test_a_django_project_keeps_its_rows_and_gets_them_back_from_a_backup(
    platform: Server, tmp_path: Path
) -> None:
    _ok(platform, "apps:create", "blog")
    _ok(platform, "addons:create", "postgresql", "-a", "blog")
    repo = tmp_path / "blog"
    for name, text in FILES.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v1")
    pushed = git(repo, "push", platform.git_url("blog"), "main", check=False)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    assert "Applying notes.0001_initial" in _ok(platform, "releases:output", "-a", "blog")
    post = httpx.post(
        f"http://127.0.0.1:{platform.port}/notes",
        content="kept",
        headers={"Host": "blog.localhost"},
    )
    assert post.text == "ok"
    # a restart of the platform, then a kill -9 of PostgreSQL
    os.kill(platform.process.pid, signal.SIGKILL)
    platform.process.wait()
    platform.process = start_server(platform.home, platform.port, platform.env, isolation=True)
    postmaster = platform.home / "addons" / "postgresql" / "data" / "postmaster.pid"
    pid = int(postmaster.read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not psutil.pid_exists(pid), timeout=10, interval=0.05)
    wait_until(lambda: _answer(platform) == "kept", timeout=60, interval=0.2)
    # capture, drop the table, restore: the row is back
    _ok(platform, "pg:backups:capture", "-a", "blog")
    _ok(platform, "pg:psql", "-a", "blog", "-c", "drop table notes_note")
    wait_until(lambda: _answer(platform) not in ("kept", ""), timeout=30, interval=0.2)
    _ok(platform, "pg:backups:restore", "-a", "blog", "--confirm", "blog")
    wait_until(lambda: _answer(platform) == "kept", timeout=30, interval=0.2)
