"""Reading .env files: every line checked, malformed ones named by number."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from dotenv.parser import parse_stream

from corral.errors import UserError
from corral.local.dotenv import check_dotenv, config_vars, parse_dotenv, read_dotenv

GOOD = """\
# a comment
SECRET_KEY=abc123
export DEBUG=1
SPACED = padded value   # trailing comment

SINGLE='keep # this'
DOUBLE="line one
line two"
ESCAPED="say \\"hi\\""
EMPTY=
URL=postgres://user:pw@localhost/db?x=1#frag
"""


def test_good_file_parses_to_its_values() -> None:
    values = parse_dotenv(GOOD)
    assert values["SECRET_KEY"] == "abc123"
    assert values["DEBUG"] == "1"
    assert values["SPACED"] == "padded value"
    assert values["DOUBLE"] == "line one\nline two"
    assert values["ESCAPED"] == 'say "hi"'
    assert values["SINGLE"] == "keep # this"
    assert values["EMPTY"] == ""
    assert values["URL"] == "postgres://user:pw@localhost/db?x=1#frag"


def test_lines_python_dotenv_accepts_as_written_are_accepted() -> None:
    # Everything check_dotenv lets through, python-dotenv parses without an error.
    assert not [b for b in parse_stream(io.StringIO(GOOD)) if b.error]
    check_dotenv(GOOD)


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("A=1\nnot a pair\n", 2),
        ("A=1\nJUST_A_KEY\n", 2),
        ("1ABC=x\n", 1),
        ("MY-KEY=x\n", 1),
        ("A=1\nB: 2\n", 2),
        ('A="one\ntwo" trailing\n', 2),
        ("A='x' y\n", 1),
        ('A="multi\nline"\n\nB C=1\n', 4),
        ("export =1\n", 1),  # python-dotenv reads `export ` as the prefix, then no name
    ],
)
def test_malformed_line_is_named_by_number(text: str, number: int) -> None:
    with pytest.raises(UserError, match=rf"^line {number} of \.env is not KEY=VALUE"):
        check_dotenv(text)


def test_malformed_lines_are_ones_python_dotenv_would_drop_or_leave_valueless() -> None:
    for text in ("not a pair\n", "A='x' y\n"):
        assert any(b.error for b in parse_stream(io.StringIO(text)))
    assert [b.value for b in parse_stream(io.StringIO("JUST_A_KEY\n"))] == [None]


def test_unterminated_quote_names_the_line_it_opens_on() -> None:
    with pytest.raises(UserError, match=r"^line 2 of \.env opens a \" quote that is never closed"):
        check_dotenv('A=1\nB="never closed\nC=3\n')


def test_a_leading_byte_order_mark_is_not_part_of_the_first_name() -> None:
    assert parse_dotenv("\ufeffA=1\n") == {"A": "1"}


def test_windows_line_endings_are_fine() -> None:
    assert parse_dotenv("A=1\r\nB=2\r\n") == {"A": "1", "B": "2"}


def test_values_can_refer_to_earlier_ones() -> None:
    assert parse_dotenv("HOST=db\nURL=postgres://${HOST}/x\n")["URL"] == "postgres://db/x"


def test_missing_optional_file_gives_nothing(tmp_path: Path) -> None:
    assert read_dotenv(tmp_path / ".env", required=False) == {}


def test_missing_named_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"does not exist; create it or pass another file with -e"):
        read_dotenv(tmp_path / "prod.env")


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "dev.env"
    path.write_text("A=1\n\noops\n")
    with pytest.raises(UserError, match=rf"^line 3 of {path} is not KEY=VALUE"):
        read_dotenv(path)


def test_non_utf8_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_bytes(b"A=\xff\xfe\n")
    with pytest.raises(UserError, match="not UTF-8"):
        read_dotenv(path)


def test_callers_environment_wins_unless_override() -> None:
    values = {"A": "file", "B": "file"}
    assert config_vars(values, {"A": "shell"}) == {"B": "file"}
    assert config_vars(values, {"A": "shell"}, override=True) == values
