"""What only the server knows, said by the CLI: ``domains:add`` refuses the platform's own
hostnames (another app's ``<app>.<domain>`` would take its traffic) and ``ps:memory`` names
the quota in force. Against a real ``corral server``."""

from __future__ import annotations

from pathlib import Path

from support.cli import cli_env, corral
from support.server import Server


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
