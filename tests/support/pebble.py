"""A real ACME server for tests: Debian's ``pebble``, with ``pebble-challtestsrv`` as its DNS.

Every name resolves to 127.0.0.1 unless :meth:`Pebble.point` says otherwise, and HTTP-01
is validated on the port the test's router listens on, for real (no ALWAYS_VALID).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from support.processes import free_port
from support.wait import wait_until

__all__ = ["Pebble", "need_pebble", "running_pebble"]


def need_pebble() -> None:
    """Skip (outside CI only) when Debian's pebble is not installed."""
    if shutil.which("pebble") and shutil.which("pebble-challtestsrv"):
        return
    if os.environ.get("CI"):
        raise AssertionError("pebble and pebble-challtestsrv must be installed in CI")
    pytest.skip("needs Debian's pebble (apt-get install -y pebble)")


@dataclass
class Pebble:
    """A running pebble: its directory URL, the CA bundle its TLS needs, its mock DNS."""

    directory: str
    ca_bundle: Path
    management: str
    dns_management: str

    def root(self) -> bytes:
        """The root certificate pebble issues under (changes with every start)."""
        trust = ssl.create_default_context(cafile=str(self.ca_bundle))
        return httpx.get(f"{self.management}/roots/0", verify=trust).content

    def point(self, host: str, address: str) -> None:
        """Make ``host`` resolve to ``address`` (instead of 127.0.0.1)."""
        body = {"host": host.rstrip(".") + ".", "addresses": [address]}
        httpx.post(f"{self.dns_management}/add-a", json=body).raise_for_status()


def _listen_cert(tmp: Path) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(name("test ca")).issuer_name(name("test ca"))
        .public_key(ca_key.public_key()).serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    cert = (
        x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(2)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        ), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    paths = tmp / "pebble-ca.pem", tmp / "pebble-cert.pem", tmp / "pebble-key.pem"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@contextmanager
def running_pebble(tmp: Path, http_port: int) -> Iterator[Pebble]:
    """pebble validating HTTP-01 on ``http_port``, its DNS a challtestsrv on 127.0.0.1."""
    need_pebble()
    ca, cert, key = _listen_cert(tmp)
    acme_port, mgmt_port, dns_port, dns_mgmt = (free_port() for _ in range(4))
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{acme_port}",
            "managementListenAddress": f"127.0.0.1:{mgmt_port}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    (tmp / "pebble.json").write_text(json.dumps(config))
    env = {"PATH": os.environ["PATH"], "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}
    logs = (tmp / "challtestsrv.log").open("w"), (tmp / "pebble.log").open("w")
    dns = subprocess.Popen(
        ["pebble-challtestsrv", "-dns01", f"127.0.0.1:{dns_port}", "-http01", "",
         "-https01", "", "-tlsalpn01", "", "-management", f"127.0.0.1:{dns_mgmt}",
         "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
        env=env, stdout=logs[0], stderr=subprocess.STDOUT,
    )  # fmt: skip
    pebble = subprocess.Popen(
        ["pebble", "-config", str(tmp / "pebble.json"), "-strict",
         "-dnsserver", f"127.0.0.1:{dns_port}"],
        env=env, stdout=logs[1], stderr=subprocess.STDOUT,
    )  # fmt: skip
    running = Pebble(
        f"https://127.0.0.1:{acme_port}/dir", ca,
        f"https://127.0.0.1:{mgmt_port}", f"http://127.0.0.1:{dns_mgmt}",
    )  # fmt: skip
    try:

        def up() -> bool:
            try:
                trust = ssl.create_default_context(cafile=str(ca))
                httpx.get(running.directory, verify=trust).raise_for_status()
                httpx.get(f"{running.dns_management}/").status_code  # noqa: B018
            except httpx.TransportError:
                return False
            return True

        wait_until(up, timeout=20, interval=0.1, message="pebble")
        yield running
    finally:
        for process in (pebble, dns):
            process.terminate()
            process.wait(timeout=10)
        for log in logs:
            log.close()
