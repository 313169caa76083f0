"""What only the server knows, said by the CLI: ``domains:add`` refuses the platform's own
hostnames (another app's ``<app>.<domain>`` would take its traffic), ``ps:memory`` names
the quota in force and ``releases:output`` shows the release phase's output. Against a real
``corral server``."""

from __future__ import annotations

from pathlib import Path

from support.cli import cli_env, corral
from support.server import Server, git, make_repo


def test_domains_add_refuses_another_apps_default_host(server: Server, tmp_path: Path):
    env = cli_env(tmp_path, server=f"http://127.0.0.1:{server.port}", token=server.token)
    for name in ("hello", "shop"):
        assert server.api.post("/apps", json={"name": name}).status_code == 201

    other = corral("domains:add", "-a", "hello", "shop.localhost", env=env)
    assert other.returncode == 1
    assert other.stderr.strip() == (
        "error: shop.localhost is the default address of the app shop (every app is served "
        "at <app>.localhost); add a domain of your own instead."
    )
    own = corral("domains:add", "-a", "hello", "Hello.localhost", env=env)
    assert own.returncode == 1
    assert "hello.localhost is already hello's default address" in own.stderr
    assert server.api.get("/apps/hello/domains").json() == []

    fine = corral("domains:add", "-a", "hello", "www.shop.localhost", env=env)
    assert fine.returncode == 0, fine.stderr


def test_ps_memory_names_the_quota_in_force(server: Server, tmp_path: Path):
    env = cli_env(tmp_path, server=f"http://127.0.0.1:{server.port}", token=server.token)
    assert server.api.post("/apps", json={"name": "hello"}).status_code == 201
    shown = corral("ps:memory", "-a", "hello", env=env)
    assert shown.stdout == "512 MB (the server's default)\n", shown.stderr
    assert corral("ps:memory", "-a", "hello", "1024", env=env).returncode == 0
    assert corral("ps:memory", "-a", "hello", env=env).stdout == "1024 MB\n"
    back = corral("ps:memory", "-a", "hello", "default", env=env)
    assert back.stdout.strip().endswith("done, back to the default, 512 MB"), back.stderr


def test_releases_output_shows_what_the_release_phase_printed(server: Server, tmp_path: Path):
    env = cli_env(tmp_path, server=f"http://127.0.0.1:{server.port}", token=server.token)
    assert server.api.post("/apps", json={"name": "hello"}).status_code == 201
    repo = make_repo(tmp_path, server, "hello")
    (repo / "Procfile").write_text("web: gunicorn app:app\nrelease: echo migrating the db\n")
    git(repo, "commit", "-qam", "a release phase")
    git(repo, "push", "corral", "main")
    output = corral("releases:output", "-a", "hello", env=env)
    assert output.returncode == 0, output.stderr
    assert output.stdout == "migrating the db\n"
    assert corral("releases:output", "-a", "hello", "v1", env=env).stdout == output.stdout
    server.api.patch("/apps/hello/config", json={"GREETING": "hi"}).raise_for_status()
    none = corral("releases:output", "-a", "hello", "v2", env=env)
    assert none.returncode == 1
    assert none.stderr.strip() == (
        "error: v2 of hello ran no release phase (a `release:` line in its Procfile), "
        "so it has no release output."
    )
