"""``logs``: an app's recent log lines, or a live tail with ``--tail``."""

from __future__ import annotations

import json
import sys
import zlib

import click
from rich.console import Console
from rich.text import Text

from corral.cli.client import APP_OPTION, JSON_OPTION, ApiClient, app_path
from corral.cli.git import resolve_app
from corral.logfiles import MAX_LOG_LINES, parse_line

_SOURCE_STYLE = {"router": "magenta", "corral": "bold blue", "build": "cyan"}
_DYNO_STYLES = ("green", "yellow", "cyan", "blue", "bright_green", "bright_yellow", "bright_cyan")


def styled(line: str) -> Text:
    """One Heroku-style log line with its ``source[dyno]`` prefix coloured (stable per dyno)."""
    parsed = parse_line(line)
    if parsed is None:
        return Text(line)
    prefix = f"{parsed.source}[{parsed.dyno}]" if parsed.dyno else parsed.source
    if parsed.source in _SOURCE_STYLE:
        style = _SOURCE_STYLE[parsed.source]
    else:
        style = _DYNO_STYLES[zlib.crc32(prefix.encode()) % len(_DYNO_STYLES)]
    text = Text(parsed.timestamp + " ", style="dim")
    text.append(prefix + ":", style=style)
    text.append(" " + parsed.message)
    return text


def as_record(line: str) -> dict[str, str | None]:
    """One log line as ``{"time", "source", "dyno", "message"}`` for ``logs --json``; a line
    of another shape is all message."""
    parsed = parse_line(line)
    if parsed is None:
        return {"time": None, "source": None, "dyno": None, "message": line}
    return {
        "time": parsed.timestamp,
        "source": parsed.source,
        "dyno": parsed.dyno or None,
        "message": parsed.message,
    }


@click.command("logs")
@APP_OPTION
@click.option("-t", "--tail", is_flag=True, help="Keep streaming new lines until Ctrl-C.")
@click.option(
    "-n",
    "--num",
    "num",
    type=click.IntRange(min=1, max=MAX_LOG_LINES),
    default=100,
    show_default=True,
    help=f"How many recent lines to show (1 to {MAX_LOG_LINES}).",
)
@click.option(
    "-s",
    "--source",
    type=click.Choice(["app", "router", "corral", "build"]),
    help="Only lines from this source.",
)
@click.option(
    "-d",
    "--dyno",
    "--ps",
    "dyno",
    help="Only lines from this dyno (web.1) or process type (web); --ps is the same.",
)
@JSON_OPTION
def logs(
    app: str | None, tail: bool, num: int, source: str | None, dyno: str | None, as_json: bool
) -> None:
    """Show the app's logs: dynos, router and platform lines, merged by time."""
    name = resolve_app(app)
    params: dict[str, str | int] = {"n": num}
    if source:
        params["source"] = source
    if dyno:
        params["dyno"] = dyno
    if tail:
        params["tail"] = 1
    console = Console(highlight=False, soft_wrap=True)
    try:
        with ApiClient.load() as api:
            for line in api.stream("GET", app_path(name, "logs"), params=params):
                if as_json:  # one object per line, so a tail can be piped to jq as it runs
                    click.echo(json.dumps(as_record(line)))
                else:
                    console.print(styled(line))
                sys.stdout.flush()
    except KeyboardInterrupt:
        return  # Ctrl-C is how a tail ends


COMMANDS = [logs]
