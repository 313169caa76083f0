"""Reading ``.env`` files for ``corral local``: parsed by python-dotenv, every line checked.

python-dotenv skips lines it cannot parse (reporting each as a binding with ``error``
set), reads a bare ``KEY`` as a key without a value and accepts names like ``MY-KEY``;
corral refuses all three and names the line, so a typo never silently drops a config var.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from dotenv import dotenv_values
from dotenv.parser import Binding, parse_stream

from corral.errors import UserError

__all__ = ["check_dotenv", "config_vars", "env_file_vars", "parse_dotenv", "read_dotenv"]

_NEWLINE = re.compile(r"\r\n|\n|\r")
#: How a variable's line starts: a name of letters, digits and ``_``, then ``=``.
_ASSIGNMENT = re.compile(r"[ \t]*(?:export[ \t]+)?[A-Za-z_][A-Za-z0-9_]*[ \t]*=[ \t]*")
#: A quoted value that is closed, as python-dotenv reads one (a backslash escapes).
_CLOSED = {q: re.compile(rf"{q}(?:\\.|[^{q}\\])*{q}", re.DOTALL) for q in ("'", '"')}


def _malformed(origin: str, number: int, line: str) -> UserError:
    shown = line.strip()
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return UserError(
        f"line {number} of {origin} is not KEY=VALUE (a name of letters, digits and '_', "
        f"then '='; got {shown!r}); fix or remove that line."
    )


def _refusal(binding: Binding, origin: str) -> UserError | None:
    """Why corral refuses ``binding`` (which may span lines), or None if it is fine."""
    lines = _NEWLINE.split(binding.original.string.rstrip("\r\n"))
    filled = [index for index, line in enumerate(lines) if line.strip()]
    if not filled:
        return None  # blank lines
    first, last = filled[0], filled[-1]
    opening = lines[first]
    if opening.lstrip().startswith("#") and not binding.error:
        return None  # a comment
    match = _ASSIGNMENT.match(opening)
    if not match:
        return _malformed(origin, binding.original.line + first, opening)
    if not binding.error:
        return None
    quote = opening[match.end() : match.end() + 1]
    if first == last and quote in _CLOSED and not _CLOSED[quote].match(opening, match.end()):
        # python-dotenv gave up on the value at its opening quote: nothing closes it.
        return UserError(
            f"line {binding.original.line + first} of {origin} opens a {quote} quote that is "
            "never closed; close it."
        )
    # Otherwise the quoted value closed on the last line, and something follows it there.
    return _malformed(origin, binding.original.line + last, lines[last])


def check_dotenv(text: str, origin: str = ".env") -> None:
    """Raise :class:`UserError` naming the first line that is not blank, a comment or KEY=VALUE."""
    for binding in parse_stream(io.StringIO(text)):
        refusal = _refusal(binding, origin)
        if refusal is not None:
            raise refusal


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


def env_file_vars(
    env_files: Sequence[Path],
    default: Path,
    environ: Mapping[str, str],
    *,
    override: bool = False,
) -> dict[str, str]:
    """Config vars from ``env_files`` in order (none given: ``default``, if it exists).

    Variables already in ``environ`` win unless ``override``, as in :func:`config_vars`.
    """
    values: dict[str, str] = {}
    for path in env_files:
        values.update(read_dotenv(path))
    if not env_files:
        values.update(read_dotenv(default, required=False))
    return config_vars(values, environ, override=override)
