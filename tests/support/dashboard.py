"""Helpers for the dashboard's tests: the CSRF field of a form, signing a test client in."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

WEB = {"web": "gunicorn app:app"}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the form in ``html``."""
    match = _CSRF.search(html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def log_in(client: FlaskClient, secret: str) -> FlaskClient:
    """Sign ``client`` in through the login form with the API token ``secret``."""
    form = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf_of(form.text), "token": secret})
    assert response.status_code == 302
    return client
