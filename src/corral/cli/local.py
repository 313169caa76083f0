"""Placeholder until `corral local` lands."""

COMMANDS: list = []
