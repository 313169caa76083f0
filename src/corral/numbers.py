"""Whole numbers typed by users (query strings, form fields, paths), parsed one way."""

from __future__ import annotations

import re

__all__ = ["MAX_STORED_INT", "whole_number"]

#: The largest integer SQLite stores (signed 64 bits): no count, version or size the
#: store keeps is larger, and a larger one would overflow on its way in.
MAX_STORED_INT = 2**63 - 1
#: A whole number as people type it: ASCII digits only (``"²".isdigit()`` is true too).
_DIGITS = re.compile(r"[0-9]+")


def whole_number(raw: str) -> int | None:
    """``raw`` (ASCII digits) as an int the store can hold; None for anything else."""
    if not _DIGITS.fullmatch(raw):
        return None
    number = int(raw)
    return number if number <= MAX_STORED_INT else None
