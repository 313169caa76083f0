"""Fixtures shared by the suite: a warm corral home, a real `corral server`, and the
dashboard's store, app and signed-in client. Helpers live in ``tests/support``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from corral.api import create_app
from corral.config import Settings
from corral.store import Store
from support.dashboard import log_in
from support.server import Server, running_server


@pytest.fixture(scope="session")
def corral_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One corral home for the session, so the installer cache stays warm between tests."""
    return tmp_path_factory.mktemp("corral-home")


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path, corral_home: Path) -> Iterator[Server]:
    """A real `corral server`; the test fails if stopping it leaves a process behind.

    Its router is the embedded one unless the test parametrizes ``server`` (indirectly)
    with ``"nginx"``: see ``support.server.both_routers``.
    """
    router = getattr(request, "param", "embedded")
    with running_server(tmp_path, corral_home, router=router) as running:
        yield running


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings of a fresh corral home under ``tmp_path``."""
    return Settings.load(tmp_path / "home")


@pytest.fixture
def warm_settings(tmp_path: Path, corral_home: Path) -> Settings:
    """Settings of a fresh home whose installer cache is the session's warm one."""
    home = tmp_path / "home"
    home.mkdir()
    (corral_home / "cache").mkdir(exist_ok=True)
    (home / "cache").symlink_to(corral_home / "cache", target_is_directory=True)
    return Settings.load(home)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    """The real store of that home."""
    with Store.for_settings(settings) as opened:
        yield opened


@pytest.fixture
def app(settings: Settings) -> Flask:
    """The API and dashboard app on that home, its live pages refreshing quickly."""
    flask_app = create_app(replace(settings, domain="corral.test", router_port=9090))
    flask_app.config["CORRAL_DASHBOARD_HEARTBEAT"] = 0.1
    return flask_app


@pytest.fixture
def secret(store: Store) -> str:
    """A fresh API token's secret."""
    return store.create_token("laptop")[1]


@pytest.fixture
def client(app: Flask, secret: str) -> FlaskClient:
    """A test client of the app, signed in."""
    return log_in(app.test_client(), secret)
