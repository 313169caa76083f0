"""The API's access log without credentials: gunicorn's logger, its URL fields redacted.

gunicorn's ``access_log_format`` can only pick fields, not change them, so ``corral
server`` runs the API with ``--logger-class corral.api.accesslog.RedactingLogger``: a
token a client put in a query string (``?token=...``), in a Referer, or as a URL's
userinfo is logged as ``REDACTED``; and the HTTP Basic user (git's, which may be a
token) is not logged at all. gunicorn's error log quotes request lines it could not
parse ("Invalid request from ..."), so its messages are redacted too.
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.glogging import Logger

from corral.redact import redact_text, redact_url

__all__ = ["RedactingLogger"]

_SECRET_HEADERS = frozenset({"{authorization}i", "{cookie}i", "{proxy-authorization}i"})


def _redact_record(record: logging.LogRecord) -> bool:
    text = record.getMessage()
    redacted = redact_text(text)
    if redacted != text:
        record.msg, record.args = redacted, ()
    return True


class RedactingLogger(Logger):
    """gunicorn's logger, with the request line, query, Referer and user redacted."""

    def setup(self, cfg: Any) -> None:
        """gunicorn's setup, and a filter on the error log redacting every message."""
        super().setup(cfg)
        if _redact_record not in self.error_log.filters:
            self.error_log.addFilter(_redact_record)

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict:
        """The fields an access log line may use, none holding a credential."""
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        target = redact_url(environ.get("RAW_URI") or "")
        atoms["r"] = f"{environ['REQUEST_METHOD']} {target} {environ['SERVER_PROTOCOL']}"
        atoms["q"] = redact_url("?" + (environ.get("QUERY_STRING") or ""))[1:]
        atoms["u"] = "-"
        for field in ("f", "{referer}i"):
            if isinstance(atoms.get(field), str):
                atoms[field] = redact_url(atoms[field])
        # a missing field logs as "-": the environ's copies of the request, and secret headers
        for key in [key for key in atoms if key.endswith("}e") or key in _SECRET_HEADERS]:
            del atoms[key]
        return atoms
