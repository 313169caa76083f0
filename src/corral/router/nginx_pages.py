"""The router's pages in nginx's words: each page once, and what every server block does
with nginx's own failures (:mod:`corral.router.nginx_conf` writes the rest)."""

from __future__ import annotations

from corral.router.pages import FAILURES, render_page

__all__ = ["answer", "error_pages", "page_maps", "quote"]


# What the embedded router's pages say for nginx's own answers to bad requests: the
# status nginx gives them, the page's failure and its reason.
_REFUSALS = {
    400: ("bad_request", "The request is not valid HTTP/1.1; fix the client"),
    414: ("uri_too_long", "The request line is too long; shorten the URL"),
    494: ("headers_too_large", "The request headers are too large; send fewer or shorter"),
}
#: The failures whose pages an app's state decides (no dyno asked).
_STATES = ("maintenance", "crashed", "no_dynos", "no_web")


def quote(text: str) -> str:
    """``text`` as one nginx string: quoted, with quotes and backslashes escaped."""
    if "$" in text:
        raise ValueError(f"{text!r} would be read as an nginx variable")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_RID = "\x00request-id\x00"
_HOST = "\x00host\x00"


def page_maps(max_body_mb: int) -> str:
    """Each page once, as ``$corral_page`` for the ``$corral_failure`` a location sets
    (a map's value may hold variables: the request id, the host)."""
    limit = f"The request body is larger than the router's limit of {max_body_mb} MB"
    reasons = {name: reason for name, reason in _REFUSALS.values()} | {"body_too_large": limit}
    lines = []
    for name in ("no_app", "refused", "closed", "timeout", *_STATES, *reasons):
        values = (
            {"host": _HOST}
            if name == "no_app"
            else {"reason": reasons[name]}
            if name in reasons
            else {}
        )
        body = render_page(FAILURES[name], request_id=_RID, **values).decode()
        text = quote(body).replace(_RID, "${corral_request_id}")
        lines.append(f"        {name} {text.replace(_HOST, '${corral_host_html}')};\n")
    return (
        '    map $corral_failure $corral_page {\n        default "";\n' + "".join(lines) + "    }\n"
        # the pages are never cached; a dyno's own answers keep their headers
        '    map $corral_failure $corral_page_cache {\n        default "no-cache, no-store";\n'
        '        "" "";\n        client_gone "";\n    }\n'
    )


def answer(failure: str, status: int, indent: str = "            ") -> str:
    return f"{indent}set $corral_failure {failure};\n{indent}return {status} $corral_page;\n"


def error_pages() -> str:
    """What every server block does with nginx's own failures: corral's pages."""
    parts = [
        "        error_page 502 = @bad_gateway;\n",
        "        error_page 504 = @timeout;\n",
        "        error_page 413 = @body_too_large;\n",
        *(f"        error_page {status} = @{name};\n" for status, (name, _) in _REFUSALS.items()),
        "        location @bad_gateway {\n"
        "            set $corral_failure closed;\n"
        "            if ($corral_refused) {\n"
        "                set $corral_failure refused;\n"
        "            }\n"
        "            return 503 $corral_page;\n"
        "        }\n",
        f"        location @timeout {{\n{answer('timeout', 503)}        }}\n",
        f"        location @body_too_large {{\n{answer('body_too_large', 413)}        }}\n",
    ]
    for status, (name, _) in _REFUSALS.items():
        said = answer(name, 431 if status == 494 else status)  # nginx's 494 is HTTP's 431
        parts.append(f"        location @{name} {{\n{said}        }}\n")
    return "".join(parts)
