"""Certificates through the API and CLI without an ACME server: what a user brings
(``certs:add``) is checked before it is served, bad input is one sentence, and the
service's renewal rule and the router's challenge answers hold for plain values."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from corral.certs.pem import covers
from corral.certs.policy import RenewPolicy
from corral.config import Settings
from corral.router.acme_challenge import Front, valid_token
from corral.router.http1 import RequestHead
from corral.router.tls import CertIndex, CertLayout, load_index
from corral.store import Certificate, Store
from support.certs import make_cert
from support.cli import cli_env, corral
from support.dashboard import log_in


@pytest.fixture
def client(app: Flask, store: Store) -> FlaskClient:
    """A client of the JSON API with a bearer token."""
    test_client = app.test_client()
    test_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {store.create_token('t')[1]}"
    return test_client


def _app(client: FlaskClient) -> None:
    assert client.post("/api/v1/apps", json={"name": "shop"}).status_code == 201
    assert client.post("/api/v1/apps/shop/domains", json={"hostname": "www.shop.example"})


def test_certs_add_installs_a_wildcard_for_the_hosts_it_covers(
    client: FlaskClient, settings: Settings
) -> None:
    _app(client)
    cert, key = make_cert(["*.shop.example"])
    added = client.post("/api/v1/apps/shop/certs", json={"certificate": cert, "key": key})
    assert added.status_code == 201, added.json
    assert [(c["hostname"], c["source"], c["state"]) for c in added.json] == [
        ("www.shop.example", "user", "issued")
    ]
    listed = {c["hostname"]: c for c in client.get("/api/v1/apps/shop/certs").json}
    assert listed["shop.corral.test"]["state"] == "pending"  # no certificate yet
    assert listed["www.shop.example"]["issuer"] == "*.shop.example"
    pem = CertLayout(settings.certs_dir).host_pem("www.shop.example")
    assert pem.stat().st_mode & 0o777 == 0o600
    assert settings.certs_dir.stat().st_mode & 0o777 == 0o700
    removed = client.delete("/api/v1/apps/shop/certs/www.shop.example")
    assert removed.status_code == 204


def test_certs_add_refuses_what_it_cannot_serve_in_one_sentence(client: FlaskClient) -> None:
    _app(client)
    cert, key = make_cert(["www.shop.example"])
    _, other_key = make_cert(["www.shop.example"])
    elsewhere, elsewhere_key = make_cert(["api.elsewhere.example"])
    expired, expired_key = make_cert(["www.shop.example"], days=-1)
    cases = [
        ({"certificate": cert, "key": other_key}, 422, "The key does not belong to the"),
        ({"certificate": elsewhere, "key": elsewhere_key}, 422,
         "The certificate is for api.elsewhere.example, none of shop's hosts"),
        ({"certificate": "hello", "key": key}, 422, "holds no PEM certificate"),
        ({"certificate": cert, "key": "nope"}, 422, "holds no unencrypted PEM private key"),
        ({"certificate": expired, "key": expired_key}, 422, "The certificate expired on"),
        ({"certificate": cert}, 400, "Give the certificate and its key as PEM text"),
    ]  # fmt: skip
    for body, status, message in cases:
        answer = client.post("/api/v1/apps/shop/certs", json=body)
        assert answer.status_code == status, (message, answer.json)
        assert message in answer.json["message"]
    assert client.get("/api/v1/apps/shop/certs").json[1]["state"] == "pending"
    assert client.delete("/api/v1/apps/shop/certs/nope.example").status_code == 404
    refresh = client.post("/api/v1/apps/shop/cert-refresh", json={"hostname": "x.example"})
    assert refresh.status_code == 404 and "is not a host of shop" in refresh.json["message"]
    hsts = client.put("/api/v1/apps/shop/hsts", json={"enabled": "yes"})
    assert hsts.status_code == 400
    assert client.put("/api/v1/apps/shop/hsts", json={"enabled": True}).json["hsts"] is True


def test_certs_add_with_an_unreadable_file_says_which(tmp_path: Path) -> None:
    env = cli_env(tmp_path, "http://127.0.0.1:9")
    missing = corral("certs:add", "-a", "shop", "nope.pem", "key.pem", env=env, cwd=tmp_path)
    assert missing.returncode == 1
    assert "Cannot read the certificate file nope.pem" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_renewal_is_due_at_two_thirds_of_the_lifetime_and_failures_back_off() -> None:
    policy = RenewPolicy()
    issued = Certificate("a.example", "a", "acme", "issued", not_before=0.0, not_after=90.0)
    assert not policy.due(issued, 59.9) and policy.due(issued, 60.0)
    assert not policy.due(Certificate("a.example", "a", "user", "issued", None, None, 0, 1), 9e9)
    assert policy.due(Certificate("a.example", "a", "acme", "pending"), 0)
    failed = Certificate("a.example", "a", "acme", "failed", next_attempt_at=100.0)
    assert not policy.due(failed, 99) and policy.due(failed, 100)
    assert [policy.retry_delay(n) for n in (1, 2, 3)] == [60, 120, 240]
    assert policy.retry_delay(50) == policy.cap
    assert RenewPolicy(renew_after=5).due(issued, 5.0)


def test_wildcards_cover_one_label_only() -> None:
    assert covers(["*.shop.example"], "www.shop.example")
    assert not covers(["*.shop.example"], "a.b.shop.example")
    assert not covers(["*.shop.example"], "shop.example")
    assert covers(["shop.example"], "SHOP.example")


def _head(url: bytes, host: str) -> RequestHead:
    return RequestHead(b"GET", url, "1.1", [], True, False, False, False, None, host, None)


def test_the_router_answers_only_well_formed_challenge_tokens(tmp_path: Path) -> None:
    layout = CertLayout(tmp_path / "certs")
    layout.prepare()
    token = "A" * 43
    (layout.challenges / token).write_text("key-authorization")
    (tmp_path / "certs" / "secret").write_text("account key")
    front = Front(CertIndex(layout), tls=False)
    answer = front.answer(_head(b"/.well-known/acme-challenge/" + token.encode(), "a.example"))
    assert answer is not None and answer.status == 200 and answer.body == b"key-authorization"
    for bad in (b"../secret", b"..%2fsecret", b"short", b"A" * 43 + b"/x"):
        refused = front.answer(_head(b"/.well-known/acme-challenge/" + bad, "a.example"))
        assert refused is not None and refused.status == 404
    assert not valid_token("../../etc/passwd") and valid_token(token)
    # no certificate for the host: the request goes on to the app, over HTTP
    assert front.answer(_head(b"/", "a.example")) is None
    assert load_index(layout) == {}


def test_the_app_page_shows_each_hosts_certificate(app: Flask, store: Store) -> None:
    store.create_app("shop")
    store.sync_acme_hosts({"shop.corral.test": "shop"})
    store.record_failed("shop.corral.test", "the HTTP-01 challenge failed: refused", 9e9)
    page = log_in(app.test_client(), store.create_token("t")[1]).get("/apps/shop")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'data-cert="shop.corral.test"' in text and "the HTTP-01 challenge failed" in text
