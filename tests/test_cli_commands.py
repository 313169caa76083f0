"""The small things a Heroku user expects of the commands: rollback names its target,
releases:info defaults to the current release, relative ps:scale, ``logs --ps`` and one
range for ``logs -n``. Against the stand-in API of docs/api.md."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.logfiles import MAX_LOG_LINES
from support.cli import cli_env, corral, git_repo
from support.contract_api import State, contract_app
from support.stub_api import serve


@pytest.fixture
def state() -> State:
    return State(apps={"hello": {}})


@pytest.fixture
def env(state: State, tmp_path: Path) -> Iterator[dict[str, str]]:
    with serve(contract_app(state)) as url:
        yield cli_env(tmp_path, server=url) | {"CORRAL_APP": "hello"}


def test_rollback_without_a_version_names_the_release_it_restores(
    env: dict[str, str], state: State
):
    result = corral("rollback", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Rolling back hello to v2... done, v4"
    assert state.writes == [("POST", "/api/v1/apps/hello/rollback", {"version": 2})]


def test_releases_info_defaults_to_the_current_release(env: dict[str, str]):
    result = corral("releases:info", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("=== Release v3 of hello\n")


def test_ps_scale_moves_counts_relative_to_the_current_ones(env: dict[str, str], state: State):
    result = corral("ps:scale", "web+1", env=env)
    assert result.returncode == 0, result.stderr
    assert "now running web at 3" in result.stdout
    assert corral("ps:scale", "web-2", env=env).returncode == 0
    assert [body for _, _, body in state.writes] == [{"web": 3}, {"web": 1}]
    below = corral("ps:scale", "web-2", env=env)
    assert below.returncode == 1
    assert below.stderr.strip() == (
        "error: web runs 1 dynos, so web-2 would be below zero; "
        "scale to 0 with `corral ps:scale web=0`."
    )
    unknown = corral("ps:scale", "worker+1", env=env)
    assert unknown.returncode == 1 and "no process type worker" in unknown.stderr
    assert len(state.writes) == 2


def test_logs_ps_is_an_alias_of_dyno(env: dict[str, str], state: State):
    assert corral("logs", "--ps", "web.1", env=env).returncode == 0
    assert state.params == [{"n": "100", "dyno": "web.1"}]


@pytest.mark.parametrize("num", ["0", str(MAX_LOG_LINES + 1)])
def test_logs_num_outside_the_api_range_is_refused_before_asking(
    env: dict[str, str], state: State, num: str
):
    result = corral("logs", "-n", num, env=env)
    assert result.returncode == 2
    assert f"{num} is not in the range 1<=x<={MAX_LOG_LINES}" in result.stderr
    assert "Traceback" not in result.stderr
    assert state.params == []
    assert corral("logs", "-n", str(MAX_LOG_LINES), env=env).returncode == 0


def test_help_is_a_command_too(tmp_path: Path):
    env = cli_env(tmp_path)
    everything = corral("help", env=env)
    assert everything.returncode == 0, everything.stderr
    assert everything.stdout == corral("--help", env=env).stdout
    topic = corral("help", "ps", env=env)
    assert topic.returncode == 0, topic.stderr
    assert "ps [OPTIONS]" in topic.stdout and "List the app's dynos" in topic.stdout
    assert "Related commands:" in topic.stdout and "  ps:scale " in topic.stdout
    missing = corral("help", "nope", env=env)
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "error: There is no command 'nope'; `corral help` lists them all."
    )


def test_apps_destroy_removes_the_remote_and_its_credential_helper(
    env: dict[str, str], tmp_path: Path
):
    repo = git_repo(tmp_path / "shop", env)
    config = repo / ".git" / "config"
    before = config.read_text()
    assert corral("apps:create", "shop", env=env, cwd=repo).returncode == 0
    assert "git:credential" in config.read_text()
    result = corral("apps:destroy", "shop", "--confirm", "shop", env=env, cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "Removed git remote corral." in result.stdout
    assert config.read_text() == before
