"""A client for an app with a known greeting: requests without a server."""

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app(Settings(greeting="Hello from the tests!")))
