"""Reading ``.env`` files for ``corral local``: checked line by line, then parsed by python-dotenv.

python-dotenv skips lines it cannot parse with only a logged warning, and reads a bare
``KEY`` as a key without a value; corral refuses both and names the line, so a typo never
silently drops a config var.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

from corral.errors import UserError

__all__ = ["check_dotenv", "config_vars", "parse_dotenv", "read_dotenv"]

_NEWLINE = re.compile(r"\r\n|\n|\r")
_ASSIGNMENT = re.compile(r"[ \t]*(?:export[ \t]+)?[A-Za-z_][A-Za-z0-9_]*[ \t]*=[ \t]*")
_AFTER_QUOTE = re.compile(r"[ \t]*(?:#.*)?")


def _malformed(origin: str, number: int, line: str) -> UserError:
    shown = line.strip()
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return UserError(
        f"line {number} of {origin} is not KEY=VALUE (a name of letters, digits and '_', "
        f"then '='; got {shown!r}); fix or remove that line."
    )


def _closing_line(lines: list[str], first: int, start: int, origin: str) -> int:
    """Index of the line where the quoted value opening at ``lines[first][start]`` ends."""
    quote = lines[first][start]
    number, column = first, start + 1
    while number < len(lines):
        line = lines[number]
        while column < len(line):
            char = line[column]
            if char == "\\":
                column += 2  # an escaped character, the quote included
                continue
            if char == quote:
                if not _AFTER_QUOTE.fullmatch(line[column + 1 :]):
                    raise _malformed(origin, number + 1, line)
                return number
            column += 1
        # The value goes on past the end of this line (quoted values may span lines).
        number, column = number + 1, 0
    raise UserError(
        f"line {first + 1} of {origin} opens a {quote} quote that is never closed; close it."
    )


def check_dotenv(text: str, origin: str = ".env") -> None:
    """Raise :class:`UserError` naming the first line that is not blank, a comment or KEY=VALUE."""
    lines = _NEWLINE.split(text)
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            match = _ASSIGNMENT.match(line)
            if not match:
                raise _malformed(origin, index + 1, line)
            if line[match.end() : match.end() + 1] in ("'", '"'):
                index = _closing_line(lines, index, match.end(), origin)
        index += 1


def parse_dotenv(text: str, origin: str = ".env") -> dict[str, str]:
    """The variables ``text`` defines, after :func:`check_dotenv` accepted every line."""
    check_dotenv(text, origin)
    values = dotenv_values(stream=io.StringIO(text))
    return {key: value for key, value in values.items() if value is not None}


def read_dotenv(path: Path, *, required: bool = True) -> dict[str, str]:
    """The variables the file at ``path`` defines; a missing file is an error if ``required``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if not required:
            return {}
        raise UserError(f"{path} does not exist; create it or pass another file with -e.") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a directory; pass a .env file with -e.") from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text; save it as UTF-8.") from None
    return parse_dotenv(text, str(path))


def config_vars(
    values: Mapping[str, str], environ: Mapping[str, str], *, override: bool = False
) -> dict[str, str]:
    """The ``.env`` values to apply: all if ``override``, else those not already in ``environ``."""
    if override:
        return dict(values)
    return {key: value for key, value in values.items() if key not in environ}
