"""nginx's access log records made into the embedded router's ``router.log`` lines.

nginx sends each request's record (the variables in :data:`FIELDS`, tab-separated) to the
watcher's Unix socket as a syslog datagram; :func:`record_line` turns one into the same
logfmt line the embedded router writes (:meth:`ClientConnection.log_exchange
<corral.router.connection.ClientConnection.log_exchange>`), URL credentials redacted,
so ``corral logs`` shows one format whichever router runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from corral.redact import redact_url
from corral.router.pages import FAILURES, logfmt_value

__all__ = ["FIELDS", "record_line"]

#: The nginx variables of one record, in order (the ``corral_*`` ones the config sets).
FIELDS = (
    "$corral_app",
    "$corral_failure",
    "$request_method",
    "$request_uri",
    "$http_host",
    "$corral_request_id",
    "$remote_addr",
    "$upstream_addr",
    "$upstream_connect_time",
    "$request_time",
    "$status",
    "$bytes_sent",
    "$scheme",
)

#: What precedes the record in nginx's syslog datagram: ``<190>Dec  2 10:00:00 nginx: ``.
_SYSLOG_HEAD = re.compile(rb"^<\d+>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+: ")
#: nginx's ``escape=default``: quotes, backslashes, controls and non-ASCII bytes as ``\xHH``.
_ESCAPED = re.compile(rb"\\x([0-9A-F]{2})")


def _unescape(value: bytes) -> str:
    text = _ESCAPED.sub(lambda m: bytes([int(m.group(1), 16)]), value).decode("latin-1")
    return "" if text == "-" else text  # nginx logs an empty value as "-"


def _ms(seconds: str) -> int:
    """Milliseconds of nginx's last time (``"0.002, 0.001"`` after a retry, ``-`` for none)."""
    last = seconds.rpartition(",")[2].strip()
    try:
        return round(float(last) * 1000)
    except ValueError:
        return 0


def record_line(datagram: bytes, dynos: Mapping[str, str]) -> tuple[str, str] | None:
    """``(app, line)`` for one syslog datagram of nginx, or None if it is not a record.

    ``dynos`` names the dyno behind each ``"<app> host:port"`` nginx reports as upstream.
    """
    head = _SYSLOG_HEAD.match(datagram)
    values = datagram[head.end() if head else 0 :].rstrip(b"\n").split(b"\t")
    if len(values) != len(FIELDS):
        return None
    app, failure, method, uri, host, rid, ip, upstream, connect, took, status, sent, scheme = (
        _unescape(v) for v in values
    )
    if not failure and status == "499":
        failure = "client_gone"
    known = FAILURES.get(failure)
    if known is not None and known.code is not None:
        at = f'at=error code={known.code} desc="{known.desc}"'
    elif failure == "client_gone":
        at = 'at=error code=H27 desc="Client Request Interrupted"'
    else:
        at = "at=info"
    # the dyno that last had the request (none if none accepted it)
    address = upstream.rpartition(",")[2].strip()
    dyno = "" if failure == "refused" else dynos.get(f"{app} {address}", "")
    line = (
        f"{at} method={logfmt_value(method)} path={logfmt_value(redact_url(uri))}"
        f" host={logfmt_value(host)} request_id={logfmt_value(rid)}"
        f" fwd={logfmt_value(ip, quoted=True)} dyno={logfmt_value(dyno)}"
        f" connect={_ms(connect)}ms service={_ms(took)}ms status={status}"
        f" bytes={sent} protocol={scheme}"
    )
    return app, line
