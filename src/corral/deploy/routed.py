"""Whether the router already sends an app's requests to a dyno: a deploy's "is live" check.

The supervisor records a release's verdict right after it writes the route table, and the
routers read the table on their own (nginx takes 120-240 ms to reload), so a deploy that
hears the verdict within milliseconds could say "live" while the router still answers that
nothing is running. Only the first release to serve an app needs the check: a redeploy's
old dynos keep serving until the router has switched.
"""

from __future__ import annotations

import http.client
import time

from corral.config import Settings
from corral.router.pages import FAILURES

__all__ = ["wait_until_routed"]

#: The router's own answers while its table has no web dyno of the app, or not the app:
#: (status, the fixed start of the page's message).
_NOT_YET = tuple(
    (FAILURES[name].status, FAILURES[name].message.partition("{")[0].encode())
    for name in ("no_dynos", "no_app")
)
#: Seconds between asks, and the most a deploy waits before it says "live" anyway.
_INTERVAL = 0.01
_PATIENCE = 3.0


def _router_says_no_dynos(settings: Settings, app: str) -> bool:
    """Whether the router answers ``app``'s requests with its "no web dynos" (or "no such
    app") page."""
    conn = http.client.HTTPConnection("127.0.0.1", settings.router_port, timeout=2)
    try:
        conn.request("GET", "/", headers={"Host": f"{app}.{settings.domain}"})
        answer = conn.getresponse()
        body = answer.read(65536)
    except (OSError, http.client.HTTPException):  # no router on this loopback: no waiting
        return False
    finally:
        conn.close()
    return any(answer.status == status and text in body for status, text in _NOT_YET)


def wait_until_routed(settings: Settings, app: str, *, patience: float = _PATIENCE) -> bool:
    """Wait (at most ``patience`` s) until the router stops saying ``app`` has no dynos."""
    deadline = time.monotonic() + patience
    while _router_says_no_dynos(settings, app):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_INTERVAL)
    return True
