"""Fixtures for the tests: a fresh app per test, and a client to call it with."""

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app


@pytest.fixture
def app() -> Flask:
    """An app configured for testing, with a known greeting."""
    return create_app({"TESTING": True, "GREETING": "Hello from the tests!"})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Flask's test client: requests without a server."""
    return app.test_client()
