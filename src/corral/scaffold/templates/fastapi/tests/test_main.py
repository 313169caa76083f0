"""The page renders, the JSON endpoint answers, settings come from the environment."""

from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from app.main import create_app


def test_index_shows_the_greeting(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert "Hello from the tests!" in response.text
    assert client.get("/static/app.js").status_code == 200


def test_api_hello_returns_greeting_and_time(client: TestClient) -> None:
    data = client.get("/api/hello").json()
    assert data["message"] == "Hello from the tests!"
    assert datetime.fromisoformat(data["time"]).tzinfo is not None


def test_greeting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREETING", "Hello from the environment!")
    data = TestClient(create_app()).get("/api/hello").json()
    assert data["message"] == "Hello from the environment!"
