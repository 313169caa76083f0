"""``corral server --https`` against a real ACME server (pebble), validating HTTP-01 for real.

One platform for the module: two apps pushed with git, a custom domain, a domain whose
DNS points elsewhere, and certificates renewed every few seconds (``--acme-renew-after``)
so renewal under load is seen within the test's time.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from support.certs import make_cert
from support.cli import cli_env, corral
from support.pebble import Pebble, running_pebble
from support.processes import free_port
from support.server import Server, git, make_repo, running_server
from support.wait import wait_until

pytestmark = pytest.mark.slow

DOMAIN = "corral.test"
#: An app that says which protocol the router told it the client used.
APP = """from flask import Flask, request
app = Flask(__name__)

@app.get("/")
def index():
    return "hello " + request.headers.get("X-Forwarded-Proto", "?")
"""
RENEW_AFTER = 8


@dataclass
class Https:
    server: Server
    pebble: Pebble
    https_port: int
    root: Path
    env: dict[str, str]

    def certs(self, app: str) -> dict[str, dict]:
        return {c["hostname"]: c for c in self.server.api.get(f"/apps/{app}/certs").json()}

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.root))

    def get(self, host: str, path: str = "/") -> tuple[bytes, dict]:
        """GET over TLS with SNI ``host``: the raw answer and the certificate served."""
        with (
            socket.create_connection(("127.0.0.1", self.https_port), timeout=10) as raw,
            self.context().wrap_socket(raw, server_hostname=host) as tls,
        ):
            tls.sendall(
                f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
            )
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
            return data, tls.getpeercert()


def _push(tmp_path: Path, server: Server, app: str) -> None:
    push = git(make_repo(tmp_path, server, app, source=APP), "push", "corral", "main")
    assert "remote: -----> Released v1" in push.stderr, push.stderr


@pytest.fixture(scope="module", params=["embedded", "nginx"])
def https(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, corral_home: Path
) -> Iterator[Https]:
    """A platform serving HTTPS through each router in turn (nginx: its generated config)."""
    tmp = tmp_path_factory.mktemp("https")
    port, https_port = free_port(), free_port()
    with running_pebble(tmp, port) as pebble:
        pebble.point("away.example.org", "127.0.0.2")  # DNS not pointing here
        args = (
            "--domain", DOMAIN, "--https", "--https-bind", f"127.0.0.1:{https_port}",
            "--acme-directory", pebble.directory, "--acme-ca-bundle", str(pebble.ca_bundle),
            "--acme-email", "ops@example.org", "--acme-renew-after", str(RENEW_AFTER),
        )  # fmt: skip
        with running_server(tmp, corral_home, port, args, router=request.param) as server:
            for app in ("one", "two"):
                assert server.api.post("/apps", json={"name": app}).status_code == 201
            for host in ("www.example.org", "away.example.org"):
                added = server.api.post("/apps/one/domains", json={"hostname": host})
                assert added.status_code == 201
            _push(tmp, server, "one")
            _push(tmp, server, "two")
            root = tmp / "pebble-root.pem"
            root.write_bytes(pebble.root())
            env = cli_env(tmp, f"http://localhost:{port}", server.token)
            yield Https(server, pebble, https_port, root, env)


def _issued(https: Https, app: str, hosts: list[str]) -> bool:
    certs = https.certs(app)
    return all(certs.get(h, {}).get("state") == "issued" for h in hosts)


def test_two_apps_and_a_custom_domain_are_served_over_https_by_sni(https: Https) -> None:
    wait_until(lambda: _issued(https, "one", ["one.corral.test", "www.example.org"]), timeout=90)
    wait_until(lambda: _issued(https, "two", ["two.corral.test"]), timeout=90)
    for host in ("one.corral.test", "www.example.org", "two.corral.test"):
        answer, cert = wait_until(lambda h=host: _served(https, h), timeout=10)
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
        assert answer.endswith(b"hello https")  # X-Forwarded-Proto reached the app
        assert ("DNS", host) in cert["subjectAltName"]
        issuer = dict(x[0] for x in cert["issuer"])["commonName"]
        assert issuer.startswith("Pebble Intermediate CA")
    listed = corral("certs", "-a", "one", env=https.env)
    assert listed.returncode == 0, listed.stderr
    assert "www.example.org" in listed.stdout and "Pebble Intermediate CA" in listed.stdout
    lines = (https.server.home / "logs" / "corral" / "certs.log").read_text()
    assert "Certificate of www.example.org issued by Pebble" in lines


def _served(https: Https, host: str) -> tuple[bytes, dict] | None:
    try:
        answer, cert = https.get(host)
    except (ssl.SSLError, OSError):
        return None  # the router has not read the new index yet
    return (answer, cert) if ("DNS", host) in cert["subjectAltName"] else None


def test_http_redirects_to_https_once_the_host_has_a_certificate(https: Https) -> None:
    wait_until(lambda: _issued(https, "two", ["two.corral.test"]), timeout=90)
    url = f"http://127.0.0.1:{https.server.port}"

    def redirected() -> httpx.Response | None:
        answer = httpx.get(f"{url}/a?b=1", headers={"Host": "two.corral.test"})
        return answer if answer.status_code == 308 else None

    moved = wait_until(redirected, timeout=10)
    assert moved.headers["location"] == f"https://two.corral.test:{https.https_port}/a?b=1"
    # the challenge path is the router's own, never redirected (an unknown token: 404)
    challenge = httpx.get(
        f"{url}/.well-known/acme-challenge/AAAAAAAAAAAAAAAAAAAAAAAA",
        headers={"Host": "two.corral.test"},
    )
    assert challenge.status_code == 404
    bad = httpx.get(f"{url}/.well-known/acme-challenge/..%2f..%2fcorral.db",
                    headers={"Host": "two.corral.test"})  # fmt: skip
    assert bad.status_code == 404
    # the platform's own host stays on HTTP: the CLI and git keep working there
    assert httpx.get(f"http://localhost:{https.server.port}/api/v1/health").status_code == 200


def test_failed_challenge_leaves_the_host_on_http_with_the_reason(https: Https) -> None:
    def failed() -> dict | None:
        cert = https.certs("one").get("away.example.org", {})
        return cert if cert.get("state") == "failed" else None

    cert = wait_until(failed, timeout=90)
    assert "127.0.0.2" in cert["reason"] and "HTTP-01" in cert["reason"], cert
    assert cert["next_attempt_at"] is not None  # retried later, with backoff
    served = httpx.get(
        f"http://127.0.0.1:{https.server.port}/", headers={"Host": "away.example.org"}
    )
    assert served.status_code == 200 and served.text == "hello http"
    listed = corral("certs", "-a", "one", env=https.env)
    assert "failed" in listed.stdout and "127.0.0.2" in listed.stdout
    log = (https.server.home / "logs" / "one").glob("*.log")
    assert any("Could not obtain a certificate for away.example.org" in p.read_text() for p in log)


def _served_serial(https: Https, host: str) -> int | None:
    """The serial of the certificate served for ``host``, or None while only the fallback
    (self-signed, which the client refuses) is."""
    try:
        return _serial(https, host)
    except ssl.SSLCertVerificationError:
        return None


def _serial(https: Https, host: str) -> int:
    with (
        socket.create_connection(("127.0.0.1", https.https_port), timeout=10) as raw,
        https.context().wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


class _KeptAlive:
    """One TLS connection kept open across requests (HTTP/1.1 keep-alive)."""

    def __init__(self, https: Https, host: str) -> None:
        raw = socket.create_connection(("127.0.0.1", https.https_port), timeout=10)
        self.tls = https.context().wrap_socket(raw, server_hostname=host)
        self.host = host
        self.buffer = b""

    def get(self) -> bool:
        self.tls.sendall(f"GET / HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.tls.recv(65536) or b"!"
            assert not self.buffer.endswith(b"!"), "closed"
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(rest) < length:
            rest += self.tls.recv(65536)
        self.buffer = rest[length:]
        return head.startswith(b"HTTP/1.1 200 ")

    def close(self) -> None:
        self.tls.close()


def test_renewal_under_load_fails_no_request(https: Https) -> None:
    host = "two.corral.test"
    wait_until(lambda: _issued(https, "two", [host]), timeout=90)
    first = wait_until(lambda: _served_serial(https, host), timeout=20)  # the router has it
    kept = _KeptAlive(https, host)  # opened before the renewal, used after it
    failures: list[str] = []
    done, renewed = 0, False
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and done < 10_000 and not (renewed and done >= 40):
            # nginx reloads to serve a renewed certificate, and its old workers close their
            # idle keep-alive connections then (clients reconnect): new connections only
            for fresh in (True, False) if https.server.router == "embedded" else (True,):
                try:
                    ok = https.get(host)[0].startswith(b"HTTP/1.1 200 ") if fresh else kept.get()
                except (OSError, AssertionError) as exc:
                    ok = False
                    failures.append(f"{'new' if fresh else 'kept'}: {exc!r}")
                done += 1
                if not ok:
                    failures.append("not 200")
            if not renewed and done % 20 == 0:
                renewed = _serial(https, host) != first
            # paced, so the count bound never ends the loop before the renewal is due
            time.sleep(0.02)
    finally:
        kept.close()
    assert renewed, "the certificate was not renewed within 90 s"
    assert failures == [], f"{len(failures)} of {done} requests failed: {failures[:3]}"


def test_a_certificate_the_user_brings_is_served_for_its_host(https: Https, tmp_path) -> None:
    assert https.server.api.post("/apps/two/domains", json={"hostname": "mine.example.org"})
    cert, key = make_cert(["mine.example.org"])
    (tmp_path / "cert.pem").write_text(cert)
    (tmp_path / "key.pem").write_text(key)
    added = corral("certs:add", "-a", "two", "cert.pem", "key.pem", env=https.env, cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert "Serving mine.example.org with it" in added.stdout
    wrong = corral("certs:add", "-a", "two", "key.pem", "cert.pem", env=https.env, cwd=tmp_path)
    assert wrong.returncode == 1 and "holds no PEM certificate" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    expected = x509.load_pem_x509_certificate(cert.encode()).public_bytes(Encoding.DER)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE

    def served() -> bool:
        with (
            socket.create_connection(("127.0.0.1", https.https_port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="mine.example.org") as tls,
        ):
            return tls.getpeercert(binary_form=True) == expected

    wait_until(served, timeout=20)
    [mine] = [c for c in https.server.api.get("/apps/two/certs").json()
              if c["hostname"] == "mine.example.org"]  # fmt: skip
    assert (mine["source"], mine["state"]) == ("user", "issued")
