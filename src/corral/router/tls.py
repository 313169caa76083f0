"""The router's certificates: the files under ``CORRAL_HOME/certs``, and TLS chosen by SNI.

The certificate service writes each host's key and chain to ``live/<host>.pem`` and then
the index, ``live/index.json`` (host -> fingerprint, HSTS), atomically; the router only
reads them, through :class:`CertIndex`, which re-reads the index when it changes and
builds one :class:`ssl.SSLContext` per certificate. A handshake picks its context by
the name it asks for (SNI); a name without a certificate gets a self-signed fallback.
A certificate replaced on disk is used by the next handshake: connections already open
keep the one they agreed on.
"""

from __future__ import annotations

import datetime
import json
import ssl
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from corral.files import atomic_write, file_stamp

__all__ = [
    "CertEntry",
    "CertIndex",
    "CertLayout",
    "fallback_context",
    "load_index",
    "save_index",
    "self_signed",
]


@dataclass(frozen=True)
class CertLayout:
    """Where certificates, the account key and challenge answers live (root-only)."""

    root: Path

    @property
    def live(self) -> Path:
        """One PEM file per host (key, then the chain), and the index the router follows."""
        return self.root / "live"

    @property
    def index(self) -> Path:
        """The hosts that have a certificate: what the router serves and redirects."""
        return self.live / "index.json"

    @property
    def challenges(self) -> Path:
        """HTTP-01 key authorizations, one file per token, while a challenge is open."""
        return self.root / "challenges"

    def host_pem(self, host: str) -> Path:
        """The key and chain the router serves for ``host``."""
        return self.live / f"{host}.pem"

    def prepare(self) -> None:
        """Make the directories, closed to other users (0700)."""
        for path in (self.root, self.live, self.challenges):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            path.chmod(0o700)


@dataclass(frozen=True)
class CertEntry:
    """A host's line in the index."""

    fingerprint: str
    #: Send ``Strict-Transport-Security`` on the host's HTTPS answers.
    hsts: bool = False


def save_index(layout: CertLayout, entries: dict[str, CertEntry]) -> None:
    """Write the index (atomically): the router picks it up within a fraction of a second."""
    data = {h: {"fingerprint": e.fingerprint, "hsts": e.hsts} for h, e in sorted(entries.items())}
    atomic_write(layout.index, json.dumps({"hosts": data}, indent=1) + "\n", mode=0o600)


def load_index(layout: CertLayout) -> dict[str, CertEntry]:
    """The index as written (an empty one if there is none yet)."""
    try:
        data = json.loads(layout.index.read_text())
    except FileNotFoundError:
        return {}
    return {
        str(host): CertEntry(str(e["fingerprint"]), bool(e.get("hsts", False)))
        for host, e in data["hosts"].items()
    }


def _server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    return context


def self_signed(names: list[str], days: int = 3650) -> tuple[bytes, bytes]:
    """A self-signed certificate for ``names`` (valid from two days ago for ``days`` days from
    now) and its key, as PEM: the fallback, and a stand-in certificate for tests and benches."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def fallback_context() -> ssl.SSLContext:
    """A context with a fresh self-signed certificate, for names without one of their own."""
    cert, key = self_signed(["corral fallback"])
    context = _server_context()
    # ssl loads certificates from files only: a private temporary one, gone at once
    with tempfile.NamedTemporaryFile(suffix=".pem") as handle:
        handle.write(key + cert)
        handle.flush()
        context.load_cert_chain(handle.name)
    return context


class CertIndex:
    """The hosts with a certificate and a TLS context for each, re-read when the index changes.

    Checked at most every ``interval`` seconds (a ``stat``); a file that cannot be read
    keeps the host's last good context, so a writer's hiccup never breaks a handshake.
    """

    def __init__(self, layout: CertLayout, *, interval: float = 0.2) -> None:
        self.layout = layout
        self._interval = interval
        self._checked = float("-inf")
        self._stamp: tuple[int, int, int] | None = None
        self.entries: dict[str, CertEntry] = {}
        self._contexts: dict[str, tuple[str, ssl.SSLContext]] = {}
        self._default: ssl.SSLContext | None = None

    def refresh(self) -> None:
        """Re-read the index if it changed since the last look, at most every ``interval``."""
        now = time.monotonic()
        if now - self._checked < self._interval:
            return
        self._checked = now
        stamp = file_stamp(self.layout.index)
        if stamp is None or stamp == self._stamp:
            return
        try:
            entries = load_index(self.layout)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return
        self._stamp = stamp
        contexts = {}
        for host, entry in entries.items():
            kept = self._contexts.get(host)
            if kept is not None and kept[0] == entry.fingerprint:
                contexts[host] = kept
                continue
            try:
                context = _server_context()
                context.load_cert_chain(self.layout.host_pem(host))
            except (OSError, ssl.SSLError):
                if kept is not None:
                    contexts[host] = kept
                continue
            contexts[host] = (entry.fingerprint, context)
        self.entries = {h: e for h, e in entries.items() if h in contexts}
        self._contexts = contexts

    def has(self, host: str) -> bool:
        """Whether ``host`` (lower case, no port) is served over HTTPS."""
        self.refresh()
        return host in self._contexts

    def hsts(self, host: str) -> bool:
        """Whether ``host``'s HTTPS answers carry Strict-Transport-Security."""
        entry = self.entries.get(host)
        return entry is not None and entry.hsts

    def server_context(self) -> ssl.SSLContext:
        """The listening socket's context: the fallback, switched by SNI to a host's own."""
        if self._default is None:
            self._default = fallback_context()
            self._default.sni_callback = self._pick
        return self._default

    def _pick(self, sock: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        if name:
            self.refresh()
            kept = self._contexts.get(name.lower().rstrip("."))
            if kept is not None:
                sock.context = kept[1]
        return None
