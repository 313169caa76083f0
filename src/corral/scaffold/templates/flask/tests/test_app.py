"""The page renders, the JSON endpoint answers, settings come from the environment."""

from datetime import datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app


def test_index_shows_the_greeting(app: Flask, client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert app.config["GREETING"] in response.get_data(as_text=True)


def test_index_loads_bootstrap_and_app_js_from_the_app(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    assert 'href="/bootstrap/static/css/bootstrap.min.css"' in page
    assert 'src="/static/app.js"' in page


def test_api_hello_returns_greeting_and_time(app: Flask, client: FlaskClient) -> None:
    response = client.get("/api/hello")
    assert response.status_code == 200
    data = response.get_json()
    assert data["message"] == app.config["GREETING"]
    assert datetime.fromisoformat(data["time"]).tzinfo is not None


def test_greeting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREETING", "Hello from the environment!")
    client = create_app({"TESTING": True}).test_client()
    data = client.get("/api/hello").get_json()
    assert data["message"] == "Hello from the environment!"
