"""Fixtures for the dashboard's tests (a pytest plugin named in conftest.py): a real store,
the API app on it, a signed-in test client, and the helpers forms need."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from corral.api import create_app
from corral.config import Settings
from corral.store import Store

WEB = {"web": "gunicorn app:app"}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.load(tmp_path / "home")


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with Store.for_settings(settings) as opened:
        yield opened


@pytest.fixture
def app(settings: Settings) -> Flask:
    flask_app = create_app(replace(settings, domain="corral.test", router_port=9090))
    flask_app.config["CORRAL_DASHBOARD_HEARTBEAT"] = 0.1
    return flask_app


@pytest.fixture
def secret(store: Store) -> str:
    return store.create_token("laptop")[1]


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def log_in(client: FlaskClient, secret: str) -> FlaskClient:
    form = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf_of(form.text), "token": secret})
    assert response.status_code == 302
    return client


@pytest.fixture
def client(app: Flask, secret: str) -> FlaskClient:
    return log_in(app.test_client(), secret)
