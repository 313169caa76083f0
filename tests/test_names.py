"""Name validation: app names, config keys and hostnames, with plain values and hypothesis."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.errors import UserError
from corral.store.errors import Invalid
from corral.store.names import (
    RESERVED_APP_NAMES,
    random_app_name,
    validate_app_name,
    validate_config_key,
    validate_config_value,
    validate_hostname,
)

APP_NAME_RULE = re.compile(r"[a-z][a-z0-9-]{1,29}")


def _acceptable(name: str) -> bool:
    return (
        bool(APP_NAME_RULE.fullmatch(name))
        and not name.endswith("-")
        and "--" not in name
        and name not in RESERVED_APP_NAMES
    )


@pytest.mark.parametrize("name", ["hello", "my-app-2", "ab", "a" * 30, "x1-y2-z3"])
def test_valid_app_names_are_accepted(name: str) -> None:
    assert validate_app_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["../x", "UPPER", "a" * 40, "a" * 31, "", "a", "1app", "-app", "app-", "my--app",
     "my_app", "my.app", "héllo", "app\n", " app", "app/../x"],
)  # fmt: skip
def test_malformed_app_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(Invalid, match="lowercase letters, digits") as caught:
        validate_app_name(name)
    assert caught.value.http_status == 422


@pytest.mark.parametrize("name", sorted(RESERVED_APP_NAMES))
def test_reserved_app_names_are_refused(name: str) -> None:
    with pytest.raises(Invalid, match="reserved"):
        validate_app_name(name)


@given(st.from_regex(APP_NAME_RULE, fullmatch=True))
def test_names_matching_the_rule_are_accepted_unless_excluded(name: str) -> None:
    if _acceptable(name):
        assert validate_app_name(name) == name
    else:
        with pytest.raises(Invalid):
            validate_app_name(name)


@given(st.text(max_size=40))
def test_any_text_is_either_accepted_as_is_or_refused_with_a_user_error(name: str) -> None:
    try:
        accepted = validate_app_name(name)
    except UserError as exc:
        assert not _acceptable(name)
        assert exc.message.endswith(".")
    else:
        assert accepted == name
        assert _acceptable(name)


def test_random_app_names_are_readable_and_valid() -> None:
    names = {random_app_name() for _ in range(500)}
    for name in names:
        assert validate_app_name(name) == name
        assert re.fullmatch(r"[a-z]+-[a-z]+-\d{4}", name)
    assert len(names) > 450  # collisions are rare enough to retry


@pytest.mark.parametrize("key", ["SECRET_KEY", "_private", "a", "DATABASE_URL", "Key2"])
def test_environment_variable_names_are_valid_config_keys(key: str) -> None:
    assert validate_config_key(key) == key


@pytest.mark.parametrize("key", ["", "1ABC", "A-B", "A B", "KEY=1", "ÉTÉ", "A\n"])
def test_malformed_config_keys_are_refused(key: str) -> None:
    with pytest.raises(Invalid, match="not a valid config var name"):
        validate_config_key(key)


@pytest.mark.parametrize("key", ["PORT", "DYNO"])
def test_config_keys_corral_sets_itself_are_refused(key: str) -> None:
    with pytest.raises(Invalid, match=f"{key} is set by corral"):
        validate_config_key(key)


@given(st.text(max_size=20))
def test_config_keys_are_accepted_exactly_when_they_are_env_var_names(key: str) -> None:
    valid = bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key)) and key not in ("PORT", "DYNO")
    try:
        validate_config_key(key)
    except Invalid:
        assert not valid
    else:
        assert valid


def test_config_values_with_nul_are_refused() -> None:
    assert validate_config_value("A", "any thing = fine\n") == "any thing = fine\n"
    with pytest.raises(Invalid, match="NUL"):
        validate_config_value("A", "a\0b")


@pytest.mark.parametrize(
    ("given_host", "normalised"),
    [("www.example.com", "www.example.com"), ("WWW.Example.COM.", "www.example.com"),
     ("a-b.c-d.io", "a-b.c-d.io"), ("xn--bcher-kva.example", "xn--bcher-kva.example")],
)  # fmt: skip
def test_hostnames_are_normalised(given_host: str, normalised: str) -> None:
    assert validate_hostname(given_host) == normalised


@pytest.mark.parametrize(
    "host",
    ["", "localhost", "-a.example.com", "a-.example.com", "a..com", "exa mple.com",
     "x" * 64 + ".com", "1.2.3.4", "example.com/path", "*.example.com", "http://a.com"],
)  # fmt: skip
def test_malformed_hostnames_are_refused(host: str) -> None:
    with pytest.raises(Invalid, match="not a valid hostname"):
        validate_hostname(host)
