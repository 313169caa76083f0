"""The page renders, the JSON endpoint answers, the database is migrated and usable."""

from datetime import datetime

import pytest
from django.contrib.auth.models import User


def test_index_shows_the_greeting(client, settings) -> None:
    settings.GREETING = "Hello from the tests!"
    response = client.get("/")
    assert response.status_code == 200
    assert "Hello from the tests!" in response.content.decode()
    assert 'href="/static/site.css"' in response.content.decode()


def test_api_hello_returns_greeting_and_time(client, settings) -> None:
    data = client.get("/api/hello").json()
    assert data["message"] == settings.GREETING
    assert datetime.fromisoformat(data["time"]).tzinfo is not None


@pytest.mark.django_db
def test_the_database_is_migrated() -> None:
    User.objects.create_user("ann", password="a long password")
    assert User.objects.filter(username="ann").exists()
