"""Credentials out of logged URLs: the values of query parameters named like secrets, and
a URL's userinfo (``user:password@``, or a token as the user), become ``REDACTED``.

A client may put its token in a query string (``?token=...``) though the API refuses it
there; the router's and the API's request logs must not keep it. Pure and total: any text
comes back as text, unchanged where nothing looks like a credential.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

__all__ = ["REDACTED", "is_credential_name", "redact_text", "redact_url"]

#: What a credential's value is replaced with.
REDACTED = "REDACTED"
#: Parameter names (lowercase, only letters and digits kept) that are credentials.
_NAMES = frozenset(
    {
        "auth", "authorization", "code", "credential", "credentials", "hmac", "jwt", "key",
        "otp", "pass", "passwd", "password", "pwd", "secret", "session", "sessionid", "sig",
        "signature", "token",
    }
)  # fmt: skip
#: Endings of names that are credentials too: ``access_token``, ``X-Amz-Signature``,
#: ``client_secret``, ``api_key``, ``private-key``, ``db_password``.
_ENDINGS = (
    "token", "secret", "password", "passwd", "apikey", "accesskey", "secretkey", "privatekey",
    "signature", "credential", "credentials", "sessionid",
)  # fmt: skip
_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_SEPARATORS = re.compile(r"([&;])")
#: What a value holding a URL or a query has, encoded or not (most values have none).
_NESTED = re.compile(r"[%?=@#&;]")
#: How deep a URL inside a parameter's value (``?next=/x?token=...``) is looked into.
_MAX_DEPTH = 3


def is_credential_name(name: str) -> bool:
    """Whether a query parameter called ``name`` (percent-encoded or not) holds a secret."""
    plain = _NOT_ALNUM.sub("", unquote_plus(name).lower())
    return plain in _NAMES or plain.endswith(_ENDINGS)


def redact_url(url: str) -> str:
    """``url`` (a request target, ``/path?query``, or an absolute URL) with its credentials
    replaced by ``REDACTED``; everything else is kept as it was."""
    return _redact(url, _MAX_DEPTH)


def redact_text(text: str) -> str:
    """``text`` (a log message quoting a request line or a URL) with each space-separated
    word redacted as :func:`redact_url` does."""
    if "?" not in text and "@" not in text and "#" not in text:
        return text
    return " ".join(_redact(word, _MAX_DEPTH) for word in text.split(" "))


def _redact(url: str, depth: int) -> str:
    if "?" not in url and "@" not in url and "#" not in url:
        return url  # the common case, on every request the router logs
    url, hash_sign, fragment = url.partition("#")
    head, question, query = url.partition("?")
    head = _without_userinfo(head)
    if question:
        query = _redact_query(query, depth)
    if hash_sign and "=" in fragment:  # ``#access_token=...`` of an OAuth implicit flow
        fragment = _redact_query(fragment, depth)
    return head + question + query + hash_sign + fragment


def _without_userinfo(head: str) -> str:
    """``scheme://user:secret@host/path`` as ``scheme://REDACTED@host/path``: the whole
    userinfo, since a token is often the user (``https://TOKEN@host``). Paths are kept."""
    scheme, slashes, rest = head.partition("//")
    if not slashes or (scheme and not scheme.endswith(":")):
        return head
    authority, slash, path = rest.partition("/")
    _userinfo, at, host = authority.rpartition("@")
    if not at:
        return head
    return f"{scheme}//{REDACTED}@{host}{slash}{path}"


def _redact_query(query: str, depth: int) -> str:
    parts = _SEPARATORS.split(query)
    for index in range(0, len(parts), 2):
        name, equals, value = parts[index].partition("=")
        if not equals:
            continue
        if is_credential_name(name):
            parts[index] = f"{name}={REDACTED}"
        elif depth > 1 and _NESTED.search(value):
            # a URL or a query with a credential, passed as a value (``?next=/x?token=...``)
            decoded = unquote_plus(value)
            inner = _redact(decoded, depth - 1)
            if inner == decoded and "=" in decoded:
                inner = _redact_query(decoded, depth - 1)
            if inner != decoded:
                parts[index] = f"{name}={inner}"
    return "".join(parts)
