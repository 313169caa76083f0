"""The CLI's pure helpers: argument parsing, marker lines, relative times and log colouring."""

from __future__ import annotations

import importlib
import pkgutil
import re
from datetime import UTC, datetime

import click
import pytest

import corral.cli
from corral.cli import COMMAND_MODULES, cli
from corral.cli.client import ago, git_url
from corral.cli.config import joined, parse_assignments
from corral.cli.deploy import stream_until_marker
from corral.cli.logs import styled
from corral.cli.ps import ScaleChange, parse_scale
from corral.cli.releases import parse_version
from corral.credentials import normalize_server
from corral.errors import UserError


def test_assignments_split_on_the_first_equals_sign() -> None:
    assert parse_assignments(("A=1", "B=x=y", "C=")) == {"A": "1", "B": "x=y", "C": ""}
    for bad in ("FOO", "=value"):
        with pytest.raises(UserError, match=f"'{re.escape(bad)}' is not KEY=value"):
            parse_assignments((bad,))


def test_names_are_joined_like_a_sentence() -> None:
    assert [joined(n) for n in (["A"], ["A", "B"], ["A", "B", "C"])] == [
        "A",
        "A and B",
        "A, B and C",
    ]


def test_scale_arguments_set_or_move_a_count() -> None:
    assert parse_scale(("web=3", "worker+2", "my-clock-1", "web-1=2")) == [
        ScaleChange("web", "=", 3),
        ScaleChange("worker", "+", 2),
        ScaleChange("my-clock", "-", 1),
        ScaleChange("web-1", "=", 2),
    ]
    for bad in ("web", "web=-1", "web=1.5", "web+", "=1"):
        with pytest.raises(UserError, match="is not TYPE=QUANTITY"):
            parse_scale((bad,))
    with pytest.raises(UserError, match="'Web=1': process type names are lower case"):
        parse_scale(("Web=1",))


def test_relative_scale_starts_from_the_current_count() -> None:
    assert ScaleChange("web", "+", 1).applied(2) == 3
    assert ScaleChange("web", "-", 2).applied(2) == 0
    with pytest.raises(UserError, match="web runs 1 dynos, so web-2 would be below zero"):
        ScaleChange("web", "-", 2).applied(1)
    with pytest.raises(UserError, match="no process type worker to scale by \\+1"):
        ScaleChange("worker", "+", 1).applied(None)


def test_versions_accept_v_prefix() -> None:
    assert parse_version("v3") == parse_version("3") == 3
    for bad in ("v", "v0", "three", "-1"):
        with pytest.raises(UserError, match="is not a release version"):
            parse_version(bad)


def test_only_a_final_marker_line_is_held_back(capsys: pytest.CaptureFixture[str]) -> None:
    marker = re.compile(r"corral-exit: (\d+)")
    found = stream_until_marker(["a", "corral-exit: 1", "b", "corral-exit: 2"], marker)
    assert found is not None and found.group(1) == "2"
    assert capsys.readouterr().out == "a\ncorral-exit: 1\nb\n"
    assert stream_until_marker(["a", "corral-exit: 1", "b"], marker) is None


def test_relative_times() -> None:
    now = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
    assert ago("2026-11-24T09:59:30+00:00", now) == "30s ago"
    assert ago("2026-11-24T09:58:00Z", now) == "2m ago"
    assert ago("2026-11-24T07:00:00+00:00", now) == "3h ago"
    assert ago("2026-11-20T10:00:00+00:00", now) == "4d ago"
    assert ago(None, now) == ""


def test_server_urls_get_a_scheme_and_lose_the_trailing_slash() -> None:
    assert normalize_server("127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert (
        git_url("https://corral.example.com", "hello") == "https://corral.example.com/git/hello.git"
    )
    with pytest.raises(UserError, match="is not a server URL"):
        normalize_server("ftp://x")


def test_log_prefix_is_coloured_and_the_text_kept() -> None:
    line = "2026-11-24T10:00:00.000001+00:00 app[web.1]: hello [not markup]"
    text = styled(line)
    assert text.plain == line
    assert any(span.style and "dim" not in str(span.style) for span in text.spans)
    assert styled("not a log line").plain == "not a log line"


def test_every_command_module_is_listed_for_lazy_loading() -> None:
    """The lazy command table names exactly the commands the modules define."""
    defined: dict[str, str] = {}
    for info in pkgutil.iter_modules(corral.cli.__path__):
        module = importlib.import_module(f"corral.cli.{info.name}")
        for command in getattr(module, "COMMANDS", ()):
            defined[command.name] = info.name
    assert defined == COMMAND_MODULES
    ctx = click.Context(cli)
    assert all(cli.get_command(ctx, name).name == name for name in COMMAND_MODULES)
