"""Credentials out of logged URLs (corral.redact): named query parameters, userinfo, URLs
passed as values; everything else kept as it was, and any text handled."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corral.redact import REDACTED, is_credential_name, redact_text, redact_url

SECRET = "s3cr3tVALUE"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/api/v1/apps?token=SECRET", "/api/v1/apps?token=REDACTED"),
        ("/x?access_token=SECRET&n=1", "/x?access_token=REDACTED&n=1"),
        ("/x?n=1&api_key=SECRET", "/x?n=1&api_key=REDACTED"),
        ("/x?apikey=SECRET;sig=SECRET", "/x?apikey=REDACTED;sig=REDACTED"),
        ("/x?X-Amz-Signature=SECRET", "/x?X-Amz-Signature=REDACTED"),
        ("/x?password=SECRET&passwd=SECRET", "/x?password=REDACTED&passwd=REDACTED"),
        ("/x?client_secret=SECRET&code=SECRET", "/x?client_secret=REDACTED&code=REDACTED"),
        ("/x?key=SECRET&auth=SECRET", "/x?key=REDACTED&auth=REDACTED"),
        ("/x?%74oken=SECRET", "/x?%74oken=REDACTED"),
        ("/x?TOKEN=SECRET", "/x?TOKEN=REDACTED"),
        ("http://user:SECRET@host:8080/x?y=1", "http://REDACTED@host:8080/x?y=1"),
        ("https://SECRET@host/repo.git", "https://REDACTED@host/repo.git"),
        ("//user:SECRET@host/", "//REDACTED@host/"),
        ("/x?next=%2Flogin%3Ftoken%3DSECRET", "/x?next=/login?token=REDACTED"),
        ("/x?next=/login?token=SECRET", "/x?next=/login?token=REDACTED"),
        ("/x?q=a%26token%3DSECRET", "/x?q=a&token=REDACTED"),
        ("/cb#access_token=SECRET&state=1", "/cb#access_token=REDACTED&state=1"),
    ],
)
def test_credentials_are_redacted(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/api/v1/apps/hello/logs?n=100&tail=1&source=app",
        "/users/@me",
        "/x?monkey=1&keyboard=2&keys",
        "/x?token",  # no value to hide
        "/x#section-2",
        "http://[::1",  # not a URL at all: still text
        "/a//b@c",
    ],
)
def test_urls_without_credentials_are_kept(url: str) -> None:
    assert redact_url(url) == url


@pytest.mark.parametrize(
    "name", ["token", "access_token", "refresh-token", "API_KEY", "apiKey", "secret", "sig"]
)
def test_credential_names(name: str) -> None:
    assert is_credential_name(name)


@pytest.mark.parametrize("name", ["n", "tail", "source", "dyno", "page", "keyboard", "state"])
def test_ordinary_names(name: str) -> None:
    assert not is_credential_name(name)


_NAME = st.sampled_from(["token", "access_token", "api_key", "password", "sig", "X-Amz-Credential"])
_PLAIN = st.text(st.characters(codec="ascii", exclude_characters="&;#?=%"), max_size=12)


@given(path=_PLAIN, name=_NAME, before=_PLAIN, after=_PLAIN, encode=st.booleans())
def test_a_credential_never_survives_wherever_it_sits(
    path: str, name: str, before: str, after: str, encode: bool
) -> None:
    query = f"a={before}&{name}={SECRET}&b={after}"
    nested = quote(f"/next?{query}", safe="") if encode else f"/next?{query}"
    for url in (f"/{path}?{query}", f"/{path}?r={nested}", f"http://u:{SECRET}@h/{path}"):
        redacted = redact_url(url)
        assert SECRET not in redacted, url
        assert REDACTED in redacted


@given(st.text(max_size=200))
def test_any_text_comes_back_as_text_and_redacting_twice_changes_nothing(text: str) -> None:
    once = redact_url(text)
    assert isinstance(once, str)
    assert redact_url(once) == once


def test_a_log_message_quoting_a_request_line_is_redacted() -> None:
    message = "Invalid request from ip=127.0.0.1: Invalid HTTP request line: 'GET /x?token=S'"
    assert redact_text(message) == message.replace("token=S'", "token=REDACTED")
    assert redact_text("Booting worker with pid: 12") == "Booting worker with pid: 12"
