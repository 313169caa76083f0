"""``help``: ``corral help`` is ``corral --help``; ``corral help ps`` shows ``ps`` and its
``ps:*`` commands, the way ``heroku help ps`` does."""

from __future__ import annotations

import click

from corral.errors import UserError


@click.command("help")
@click.argument("command", required=False)
@click.pass_context
def help_command(ctx: click.Context, command: str | None) -> None:
    """Show help: for every command, or for COMMAND and the commands of its topic."""
    parent = ctx.parent
    assert parent is not None and isinstance(parent.command, click.Group)  # run from `corral`
    group = parent.command
    if not command:
        click.echo(group.get_help(parent))
        return
    found = group.get_command(parent, command)
    if found is None:
        raise UserError(f"There is no command {command!r}; `corral help` lists them all.")
    with click.Context(found, info_name=command, parent=parent) as sub:
        click.echo(found.get_help(sub))
    topic = command.partition(":")[0]
    related = [
        name
        for name in group.list_commands(parent)
        if name.startswith(f"{topic}:") or name == topic
    ]
    related = [name for name in related if name != command]
    if related:
        click.echo("\nRelated commands:")
        width = max(len(name) for name in related)
        for name in related:
            other = group.get_command(parent, name)
            summary = other.get_short_help_str(limit=70) if other else ""
            click.echo(f"  {name:<{width}}  {summary}")


COMMANDS = [help_command]
