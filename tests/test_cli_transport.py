"""The CLI's HTTP transport against servers on loopback: answers framed every way HTTP/1.1
frames them, read as they arrive; a broken answer, an untrusted certificate and a bad token
each become one sentence."""

from __future__ import annotations

import io
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask, jsonify
from werkzeug.serving import make_server

from corral.cli.client import ApiClient
from corral.credentials import Credentials
from corral.errors import UserError
from support.certs import make_cert
from support.cli import cli_env, corral
from support.stub_api import TOKEN, require_token


@contextmanager
def canned(*parts: bytes) -> Iterator[tuple[str, list[bytes]]]:
    """A server that answers one connection by sending ``parts``, then closing it.

    Yields the base URL and the requests it received. (A chunked body's chunks reach the
    reader apart whatever TCP does, so they are how a test splits a line.)
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    received: list[bytes] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                request += chunk
            received.append(request)
            for part in parts:
                conn.sendall(part)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", received
    finally:
        listener.close()
        thread.join(timeout=10)


def client(url: str) -> ApiClient:
    return ApiClient(Credentials(server=url, token=TOKEN))


def test_chunked_stream_yields_lines_split_across_chunks_whole():
    body = [b"first li", b"ne\r", b"\nsecond\n", b"\xc3", b"\xa9t\xc3\xa9\nlast"]
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in body) + b"0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    with canned(b"HTTP/1.1 100 Continue\r\n\r\n", head, chunks) as (url, received):
        lines = list(client(url).stream("GET", "/api/v1/apps/x/logs", params={"tail": 1}))
    assert lines == ["first line", "second", "été", "last"]
    request = received[0].decode()
    assert request.startswith("GET /api/v1/apps/x/logs?tail=1 HTTP/1.1\r\n")
    assert f"Authorization: Bearer {TOKEN}\r\n" in request
    assert "User-Agent: corral/0.1.0\r\n" in request


def test_content_length_and_close_delimited_answers_are_read_whole():
    json_head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n"
    with canned(json_head, b'{"name":', b' "a"}') as (url, _):
        assert client(url).get("/api/v1/apps/a") == {"name": "a"}
    with canned(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", b"pip freeze\n") as (
        url,
        _,
    ):
        assert client(url).get("/api/v1/apps/a/freeze") == "pip freeze\n"
    with canned(b"HTTP/1.1 204 No Content\r\n\r\n") as (url, _):
        assert client(url).delete("/api/v1/apps/a") is None


def test_an_answer_cut_short_is_one_sentence():
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    with canned(head, b'{"partial') as (url, _), pytest.raises(UserError) as cut:
        client(url).get("/api/v1/apps")
    assert str(cut.value) == (
        f"The connection to {url} broke off (the server closed the connection mid-answer); "
        "run the command again."
    )
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nline\n\r\n40\r\nhalf"
    with canned(chunked) as (url, _), pytest.raises(UserError) as broke:
        list(client(url).stream("GET", "/api/v1/apps/a/logs"))
    assert str(broke.value) == (
        f"The connection to {url} broke off (the server closed the connection mid-answer); "
        "run the command again."
    )


def test_a_malformed_chunk_size_is_one_sentence_not_a_loop():
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"
    with canned(answer) as (url, _), pytest.raises(UserError) as broke:
        list(client(url).stream("GET", "/api/v1/apps/a/logs"))
    assert str(broke.value) == (
        f"The connection to {url} broke off (the server sent a malformed chunk); "
        "run the command again."
    )


def test_an_error_answer_without_json_names_the_status_and_path():
    answer = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad"
    with canned(answer) as (url, _), pytest.raises(UserError) as refused:
        client(url).get("/api/v1/apps", params={"q": "x"})
    assert str(refused.value) == "The server answered 502 Bad Gateway to GET /api/v1/apps."


@pytest.mark.parametrize(
    ("token", "said"),
    [("abc\r\nX-Evil: 1", "a line break"), ("abc\u2014def", "a character no token has")],
)
def test_a_token_no_header_can_hold_is_refused_before_it_is_sent(
    tmp_path: Path, token: str, said: str
):
    env = cli_env(tmp_path, server="http://127.0.0.1:9", token=token)
    result = corral("apps", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: The API token holds {said}; log in again")
    assert "Traceback" not in result.stderr and "abc" not in result.stderr


def _tls_app() -> Flask:
    app = Flask(__name__)

    @app.get("/api/v1/apps")
    @require_token
    def apps():
        return jsonify([])

    return app


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    cert, key = make_cert(["localhost"])
    (tmp_path / "cert.pem").write_text(cert)
    (tmp_path / "key.pem").write_text(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server = make_server("127.0.0.1", 0, _tls_app(), threaded=True, ssl_context=context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_port}", tmp_path / "cert.pem"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_https_checks_the_certificate_and_trusts_what_ssl_cert_file_names(
    https_server: tuple[str, Path], tmp_path: Path
):
    url, cert = https_server
    env = cli_env(tmp_path, server=url)
    for key in ("SSL_CERT_FILE", "SSL_CERT_DIR"):  # certifi's bundle, then, as httpx had
        env.pop(key, None)
    untrusted = corral("apps", env=env)
    assert untrusted.returncode == 1
    assert untrusted.stderr.startswith(f"error: Cannot reach the corral server at {url}; ")
    assert "certificate verify failed" in untrusted.stderr
    assert "Traceback" not in untrusted.stderr and TOKEN not in untrusted.stderr
    trusted = corral("apps", env=env | {"SSL_CERT_FILE": str(cert)})
    assert trusted.returncode == 0, trusted.stderr
    assert trusted.stdout.startswith("No apps yet")


def test_download_writes_the_answer_as_it_arrives():
    data = bytes(range(256)) * 1000
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (data[:1000], data[1000:]))
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    target = io.BytesIO()
    with canned(head, chunks + b"0\r\n\r\n") as (url, _):
        assert client(url).download("/api/v1/addons/db/backups/b1", target) == len(data)
    assert target.getvalue() == data
