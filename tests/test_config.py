"""Settings: read once from the environment, with the defaults corral documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.config import Settings
from corral.errors import UserError


def test_domain_and_router_port_default_to_localhost_8080(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CORRAL_DOMAIN", raising=False)
    monkeypatch.delenv("CORRAL_ROUTER_PORT", raising=False)
    settings = Settings.load(tmp_path)
    assert (settings.domain, settings.router_port) == ("localhost", 8080)
    assert settings.app_url("hello") == "http://hello.localhost:8080/"


def test_domain_and_router_port_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORRAL_DOMAIN", "apps.example.test")
    monkeypatch.setenv("CORRAL_ROUTER_PORT", "9090")
    assert Settings.load(tmp_path).app_url("hello") == "http://hello.apps.example.test:9090/"


def test_a_router_port_that_is_no_port_says_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORRAL_ROUTER_PORT", "eighty")
    with pytest.raises(UserError, match="set it to a port number"):
        Settings.load(tmp_path)
