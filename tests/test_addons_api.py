"""The add-on API's refusals, each one sentence and changing nothing: PostgreSQL not
installed, an unknown service, a config var that is taken or malformed, an unknown add-on."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from corral.api import create_app
from corral.config import Settings
from corral.store import Store


@pytest.fixture
def api(settings: Settings, store: Store, secret: str, tmp_path: Path) -> FlaskClient:
    """The API with no PostgreSQL where it looks (an empty directory), signed in."""
    empty = tmp_path / "no-postgresql"
    empty.mkdir()
    app = create_app(replace(settings, postgresql_bin=empty))
    store.create_app("alpha")
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    return client


def test_without_postgresql_create_names_the_package_and_makes_nothing(
    api: FlaskClient, settings: Settings, store: Store
) -> None:
    answer = api.post("/api/v1/apps/alpha/addons", json={"service": "postgresql"})
    assert answer.status_code == 503
    message = answer.json["message"]
    assert "postgresql package" in message and message.count(". ") == 0
    assert store.addons() == [] and store.config("alpha") == {}
    assert not (settings.home / "addons").exists()


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"service": "mysql"}, 400, "corral provides postgresql"),
        ({}, 400, '"service"'),
        ({"service": "postgresql", "as": "lower_url"}, 400, "ending in _URL"),
        ({"service": "postgresql", "as": 3}, 400, '"as" must be a string'),
    ],
)
def test_bad_create_requests_say_what_to_send(
    api: FlaskClient, store: Store, body: dict, status: int, words: str
) -> None:
    answer = api.post("/api/v1/apps/alpha/addons", json=body)
    assert answer.status_code == status, answer.json
    assert words in answer.json["message"]
    assert store.addons() == []


def test_a_taken_config_var_is_refused_before_anything_is_made(
    api: FlaskClient, store: Store
) -> None:
    store.set_config("alpha", {"REPORTS_URL": "postgres://elsewhere/db"})
    answer = api.post(
        "/api/v1/apps/alpha/addons", json={"service": "postgresql", "as": "REPORTS_URL"}
    )
    assert answer.status_code == 409 and "--as" in answer.json["message"]
    assert store.config("alpha") == {"REPORTS_URL": "postgres://elsewhere/db"}


def test_unknown_apps_and_addons_are_404s(api: FlaskClient) -> None:
    assert api.post("/api/v1/apps/nope/addons", json={"service": "postgresql"}).status_code == 404
    for path in ("/addons/postgresql-x-1", "/addons/postgresql-x-1/backups"):
        answer = api.get(f"/api/v1{path}")
        assert answer.status_code == 404 and "corral addons" in answer.json["message"]
    assert api.delete("/api/v1/addons/postgresql-x-1?confirm=alpha").status_code == 404
