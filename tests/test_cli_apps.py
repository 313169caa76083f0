"""apps, config, releases, ps, domains, logs and help commands against a docs/api.md server,
including the small things a Heroku user expects: rollback names its target, releases:info
defaults to the current release, relative ps:scale, ``logs --ps``, one range for ``logs -n``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.logfiles import MAX_LOG_LINES
from support.cli import cli_env, corral, git, git_repo
from support.contract_api import State, contract_app
from support.stub_api import serve


@pytest.fixture
def state() -> State:
    return State(apps={"hello": {}})


@pytest.fixture
def env(state: State, tmp_path: Path) -> Iterator[dict[str, str]]:
    with serve(contract_app(state)) as url:
        yield cli_env(tmp_path, server=url) | {"CORRAL_APP": "hello"}


def test_apps_create_in_a_repository_adds_the_corral_remote(env: dict[str, str], tmp_path: Path):
    repo = git_repo(tmp_path / "shop", env)
    result = corral("apps:create", "shop", env=env, cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "Creating shop... done, shop" in result.stdout
    assert "http://shop.localhost:8080/" in result.stdout
    assert git("remote", "get-url", "corral", cwd=repo, env=env).strip().endswith("/git/shop.git")
    taken = corral("apps:create", "shop", env=env, cwd=repo)
    assert taken.returncode == 1
    assert taken.stderr.strip() == "error: The name shop is taken; choose another."


def test_apps_lists_as_json_and_table(env: dict[str, str]):
    listed = corral("apps", "--json", env=env)
    assert [app["name"] for app in json.loads(listed.stdout)] == ["hello"]
    table = corral("apps", env=env)
    assert "hello" in table.stdout and "v3" in table.stdout


def test_apps_info_shows_release_formation_and_domains(env: dict[str, str]):
    result = corral("apps:info", env=env)
    assert result.returncode == 0, result.stderr
    for expected in ("=== hello", "v3", "web=2", "www.example.com", "/git/hello.git"):
        assert expected in result.stdout
    assert json.loads(corral("apps:info", "--json", env=env).stdout)["name"] == "hello"


@pytest.mark.parametrize(
    ("confirm", "message"),
    [
        ([], "pass --confirm hello to go ahead"),
        (["--confirm", "hellp"], "--confirm hellp does not match the app hello"),
    ],
)
def test_apps_destroy_needs_a_matching_confirm(
    env: dict[str, str], state: State, confirm: list[str], message: str
):
    result = corral("apps:destroy", "hello", *confirm, env=env)
    assert result.returncode == 1
    assert message in result.stderr
    assert state.writes == []


def test_apps_destroy_with_confirm_deletes_the_app(env: dict[str, str], state: State):
    result = corral("apps:destroy", "hello", "--confirm", "hello", env=env)
    assert result.returncode == 0, result.stderr
    assert state.writes == [("DELETE", "/api/v1/apps/hello", None)]


def test_maintenance_on_and_open(env: dict[str, str], state: State):
    assert corral("maintenance:on", env=env).returncode == 0
    assert state.writes == [("PUT", "/api/v1/apps/hello/maintenance", {"enabled": True})]
    assert corral("open", env=env).stdout == "http://hello.localhost:8080/\n"


def test_config_set_rejects_an_argument_without_equals(env: dict[str, str], state: State):
    result = corral("config:set", "GOOD=1", "FOO", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: 'FOO' is not KEY=value")
    assert state.writes == []


def test_config_set_and_unset_report_the_new_release(env: dict[str, str], state: State):
    result = corral("config:set", "SECRET=a=b", "DEBUG=", env=env)
    assert result.returncode == 0, result.stderr
    assert "Setting SECRET and DEBUG and restarting hello... done, v4" in result.stdout
    assert state.writes == [("PATCH", "/api/v1/apps/hello/config", {"SECRET": "a=b", "DEBUG": ""})]
    result = corral("config:unset", "SECRET", "DEBUG", "GREETING", env=env)
    assert "Unsetting SECRET, DEBUG and GREETING and restarting hello... done, v5" in result.stdout
    assert state.writes[-1][2] == {"SECRET": None, "DEBUG": None, "GREETING": None}


def test_config_shows_shell_json_and_single_values(env: dict[str, str], state: State):
    state.config["QUOTED"] = "it's here"
    assert corral("config", "--shell", env=env).stdout == (
        "GREETING='hello world'\nQUOTED='it'\"'\"'s here'\n"
    )
    assert json.loads(corral("config", "--json", env=env).stdout) == state.config
    assert corral("config:get", "GREETING", env=env).stdout == "hello world\n"
    missing = corral("config:get", "NOPE", env=env)
    assert missing.returncode == 1 and "hello has no config var NOPE" in missing.stderr


def test_releases_list_info_and_rollback(env: dict[str, str], state: State):
    listed = corral("releases", "-n", "2", "--json", env=env)
    assert [r["name"] for r in json.loads(listed.stdout)] == ["v3", "v2"]
    info = corral("releases:info", "v2", env=env)
    assert info.returncode == 0, info.stderr
    assert "Release v2 of hello" in info.stdout and "gunicorn app:app" in info.stdout
    result = corral("rollback", "v2", env=env)
    assert "Rolling back hello to v2... done, v4" in result.stdout
    assert corral("rollback", "2", env=env).returncode == 0
    assert [body for _, _, body in state.writes] == [{"version": 2}, {"version": 2}]
    bad = corral("rollback", "two", env=env)
    assert bad.returncode == 1 and "'two' is not a release version" in bad.stderr


def test_ps_scale_validates_type_equals_quantity(env: dict[str, str], state: State):
    for argument in ("web", "web=many", "web=-1"):
        result = corral("ps:scale", argument, env=env)
        assert result.returncode == 1
        assert f"'{argument}' is not TYPE=QUANTITY" in result.stderr
    upper = corral("ps:scale", "Web=1", env=env)
    assert upper.returncode == 1
    assert upper.stderr.strip() == (
        "error: 'Web=1': process type names are lower case; scale with `corral ps:scale web=1`."
    )
    assert state.writes == []
    result = corral("ps:scale", "web=3", "worker=1", env=env)
    assert result.returncode == 0, result.stderr
    assert "now running web at 3, worker at 1" in result.stdout
    assert state.writes == [("PATCH", "/api/v1/apps/hello/formation", {"web": 3, "worker": 1})]


def test_ps_table_and_unsupported_restart(env: dict[str, str]):
    table = corral("ps", env=env)
    assert table.returncode == 0, table.stderr
    for expected in ("web.1", "up", "v3", "5001", "52.4", "1.5", "ago"):
        assert expected in table.stdout
    restart = corral("ps:restart", "web", env=env)
    assert restart.returncode == 1
    assert restart.stderr.strip() == "error: This server does not support ps:restart yet."


def test_domains_add_and_logs_parameters(env: dict[str, str], state: State):
    assert corral("domains:add", "www.example.com", env=env).returncode == 0
    assert state.writes == [("POST", "/api/v1/apps/hello/domains", {"hostname": "www.example.com"})]
    result = corral("logs", "-n", "5", "-s", "router", "-d", "web.1", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "2026-11-24T10:00:00.000001+00:00 app[web.1]: started"
    assert state.params == [{"n": "5", "source": "router", "dyno": "web.1"}]


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


def test_config_and_rollback_say_when_the_release_is_still_starting(
    env: dict[str, str], state: State
):
    state.stuck = True
    waited = corral("config:set", "A=1", env=env | {"CORRAL_RELEASE_WAIT": "1"})
    assert waited.returncode == 1
    assert "Setting A and restarting hello... !" in waited.stdout
    assert waited.stderr.strip() == (
        "error: v4 is still starting; follow it with `corral logs --tail -a hello` "
        "(`corral releases -a hello` shows when it is live)."
    )
    back = corral("rollback", "v2", env=env | {"CORRAL_RELEASE_WAIT": "1"})
    assert (back.returncode, "v5 is still starting" in back.stderr) == (1, True)
    quick = corral("config:unset", "--no-wait", "A", env=env)
    assert quick.returncode == 0, quick.stderr
    assert quick.stdout.strip() == (
        "Unsetting A and restarting hello... done, v6 is rolling out "
        "(`corral releases -a hello` shows when it is live)"
    )
