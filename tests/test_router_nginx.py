"""The nginx router's own parts: the configuration written from a table (checked by a real
``nginx -t``), a configuration nginx refuses never replacing the live one, how soon a new
table is in effect, and nginx's records made into the embedded router's log lines.

What both routers do the same way (routing, pages, headers, streams) is proved against
each in ``test_router.py``; deploys through nginx in ``test_server.py``.
"""

from __future__ import annotations

import re
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from corral.router import AppRoute, Backend, RouteTable
from corral.router.nginx import find_nginx
from corral.router.nginx_conf import NginxOptions, TlsSite, render
from corral.router.nginx_log import record_line
from corral.router.tls import CertEntry, CertLayout, save_index, self_signed
from corral.runtime.units import ROUTE_SETTLE
from support.nginx import NginxRouter, require_nginx
from support.processes import free_port
from test_router import BackendServer

TABLE = RouteTable(
    "corral.test",
    {
        "web": AppRoute(
            "web", (Backend("web.1", "127.0.0.1", 5001), Backend("web.2", "127.0.0.1", 5002))
        ),
        "down": AppRoute("down", maintenance=True),
        "gone": AppRoute("gone", crashed=True),
        "idle": AppRoute("idle"),
        "worker": AppRoute("worker", has_web=False),
        "corral": AppRoute(
            "corral",
            (Backend("api", "127.0.0.1", 5003),),
            streams=(Backend("streams", "127.0.0.1", 5004),),
        ),
    },
    {"www.example.com": "web", "localhost": "corral", 'evil";}': "web"},
)


def _options(tmp_path: Path, **kw) -> NginxOptions:
    return NginxOptions("127.0.0.1", 8080, tmp_path / "nginx", tmp_path / "records.sock", **kw)


def _nginx_t(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    require_nginx()
    (tmp_path / "nginx").mkdir(exist_ok=True)
    conf = tmp_path / "nginx" / "nginx.conf"
    conf.write_text(text)
    prefix = str(tmp_path / "nginx")
    return subprocess.run(
        [str(find_nginx()), "-t", "-q", "-e", "stderr", "-p", prefix, "-c", str(conf)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_config_for_every_kind_of_route_passes_nginx_t(tmp_path) -> None:
    text = render(TABLE, _options(tmp_path))
    checked = _nginx_t(tmp_path, text)
    assert checked.returncode == 0, checked.stderr
    assert "server_name web.corral.test www.example.com;" in text
    assert "server_name corral.corral.test localhost;" in text
    assert "evil" not in text  # a host nginx could misread is left out, not written raw
    assert "keepalive 32;" in text and "proxy_buffering off;" in text  # the platform's streams
    assert "/etc/nginx" not in text and "/var/lib/nginx" not in text


def test_tls_sites_get_a_block_of_their_own_with_their_certificate(tmp_path) -> None:
    cert, key = tmp_path / "www.crt", tmp_path / "www.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=www.example.com", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    options = _options(
        tmp_path, tls=(TlsSite("www.example.com", cert, key),), https=("127.0.0.1", 8443)
    )
    text = render(TABLE, options)
    checked = _nginx_t(tmp_path, text)
    assert checked.returncode == 0, checked.stderr
    block = text[text.index("listen 127.0.0.1:8443 ssl;") :]
    assert f'ssl_certificate "{cert}";' in block
    assert block.index("server_name www.example.com;") < block.index(
        "proxy_pass http://corral_web_web;"
    )


@pytest.fixture
def backend():
    server = BackendServer("web.1")
    yield server
    server.stop()


def test_a_config_nginx_refuses_never_replaces_the_live_one(tmp_path, backend) -> None:
    good = RouteTable("localhost", {"hello": AppRoute("hello", (backend.backend,))})
    router = NginxRouter(tmp_path, good)
    try:
        live = (tmp_path / "nginx" / "nginx.conf").read_text()
        # a port nginx cannot use: what a corrupted table would give it
        router.table = RouteTable(
            "localhost", {"hello": AppRoute("hello", (Backend("web.1", "127.0.0.1", 70000),))}
        )
        said = router.output()
        assert re.search(
            r"Kept the running nginx configuration: nginx -t refused the new one \(.*invalid port",
            said,
        ), said
        assert (tmp_path / "nginx" / "nginx.conf").read_text() == live
        assert not (tmp_path / "nginx" / "nginx.conf.new").exists()
        served = httpx.get(router.url, headers={"Host": "hello.localhost"}, timeout=5)
        assert served.status_code == 200 and served.json()["dyno"] == "web.1"
        router.table = RouteTable("localhost", {"hello": AppRoute("hello")})  # a good one again
        assert httpx.get(router.url, headers={"Host": "hello.localhost"}).status_code == 503
    finally:
        router.close()


def test_a_new_table_is_in_effect_well_within_the_route_settle_time(tmp_path, backend) -> None:
    router = NginxRouter(tmp_path, RouteTable("localhost", {"hello": AppRoute("hello")}))
    try:
        for i in range(3):
            router.table = RouteTable(
                "localhost", {"hello": AppRoute("hello", (backend.backend,) if i % 2 == 0 else ())}
            )
        times = re.findall(r"checked in (\d+) ms, in effect (\d+) ms later", router.output())
        assert len(times) == 3
        # the supervisor stops a dyno ROUTE_SETTLE after taking it out of the table
        assert all((int(c) + int(e)) / 1000 < ROUTE_SETTLE / 2 for c, e in times), times
    finally:
        router.close()


def test_records_become_the_embedded_routers_lines_with_credentials_redacted() -> None:
    datagram = (
        b"<190>Dec  2 10:00:00 nginx: hello\t\tGET\t/x?token=s3cret&q=1\thello.localhost:8080\t"
        b"abc123\t127.0.0.1\t127.0.0.1:5001, 127.0.0.1:5002\t-, 0.002\t0.013\t200\t512\thttp"
    )
    dynos = {"hello 127.0.0.1:5002": "web.2"}
    assert record_line(datagram, dynos) == (
        "hello",
        "at=info method=GET path=/x?token=REDACTED&q=1 host=hello.localhost:8080"
        ' request_id=abc123 fwd="127.0.0.1" dyno=web.2 connect=2ms service=13ms status=200'
        " bytes=512 protocol=http",
    )
    timeout = datagram.replace(b"hello\t\t", b"hello\ttimeout\t").replace(b"\t200\t", b"\t503\t")
    assert record_line(timeout, dynos)[1].startswith('at=error code=H12 desc="Request timeout"')
    assert record_line(b"<190>Dec  2 10:00:00 nginx: junk", dynos) is None


def test_https_by_sni_with_redirects_hsts_and_the_acme_challenge(tmp_path, backend) -> None:
    layout = CertLayout(tmp_path / "certs")
    layout.prepare()
    cert, key = self_signed(["secure.localhost"], days=1)
    layout.host_pem("secure.localhost").write_bytes(key + cert)
    save_index(layout, {"secure.localhost": CertEntry("test", hsts=True)})
    (layout.challenges / "tok-0123456789abcdef").write_text("tok-0123456789abcdef.key")
    (tmp_path / "ca.pem").write_bytes(cert)
    https = free_port()
    apps = {name: AppRoute(name, (backend.backend,)) for name in ("secure", "plain")}
    router = NginxRouter(
        tmp_path, RouteTable("localhost", apps),
        certs=str(layout.root), https_bind=f"127.0.0.1:{https}",
    )  # fmt: skip
    try:
        plain = httpx.get(router.url, headers={"Host": "plain.localhost"})
        assert plain.status_code == 200 and "strict-transport-security" not in plain.headers
        moved = httpx.get(router.url + "/x?y=1", headers={"Host": "secure.localhost"})
        assert moved.status_code == 308
        assert moved.headers["location"] == f"https://secure.localhost:{https}/x?y=1"
        challenge = f"{router.url}/.well-known/acme-challenge/tok-0123456789abcdef"
        answered = httpx.get(challenge, headers={"Host": "secure.localhost"})
        assert answered.text == "tok-0123456789abcdef.key"  # not redirected
        context = ssl.create_default_context(cafile=tmp_path / "ca.pem")
        with httpx.Client(verify=context) as client:
            # the right certificate for the name asked (SNI), verified against it
            served = client.get(
                f"https://127.0.0.1:{https}/",
                headers={"Host": "secure.localhost"},
                extensions={"sni_hostname": "secure.localhost"},
            )
        assert served.status_code == 200
        assert served.json()["headers"]["X-Forwarded-Proto"] == "https"
        assert served.headers["strict-transport-security"] == "max-age=31536000"
        router.wait_log(lambda line: "host=secure.localhost" in line and "protocol=https" in line)
    finally:
        router.close()
