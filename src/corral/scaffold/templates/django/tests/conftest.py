"""Tests use plain static storage: hashed names need collectstatic to have run."""

import pytest


@pytest.fixture(autouse=True)
def _plain_static_files(settings) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {
            "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        },
    }
