"""Certificates as files: checking a key and chain, what they say, and installing them.

Used for both what the ACME service obtains and what a user brings (``certs:add``): a
pair is checked (the key is the certificate's, the certificate names the host, it is
still valid) before it reaches ``live/<host>.pem``, so the router never loads a bad one.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from corral.errors import UserError
from corral.files import atomic_write
from corral.router.tls import CertLayout
from corral.store import Issued

__all__ = ["BadCertificate", "CertPair", "covers", "install", "parse_pair"]


class BadCertificate(UserError):
    """A certificate or key a user brought cannot be served (the API answers 422)."""

    http_status = 422


@dataclass(frozen=True)
class CertPair:
    """A private key and its certificate chain, checked to belong together."""

    key_pem: bytes
    chain_pem: bytes
    leaf: x509.Certificate

    @property
    def names(self) -> list[str]:
        """The DNS names the certificate is valid for (lower case; ``*.`` for wildcards)."""
        try:
            ext = self.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            return []
        return [n.lower() for n in ext.value.get_values_for_type(x509.DNSName)]

    @property
    def pem(self) -> bytes:
        """What the router loads: the key, then the chain."""
        return self.key_pem.rstrip(b"\n") + b"\n" + self.chain_pem

    def issued(self) -> Issued:
        """What the store records about this certificate."""
        issuer = self.leaf.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
        org = self.leaf.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        name = (issuer or org)[0].value if (issuer or org) else self.leaf.issuer.rfc4514_string()
        return Issued(
            issuer=str(name),
            not_before=self.leaf.not_valid_before_utc.timestamp(),
            not_after=self.leaf.not_valid_after_utc.timestamp(),
            fingerprint=hashlib.sha256(self.pem).hexdigest(),
        )


def covers(names: list[str], host: str) -> bool:
    """Whether a certificate for ``names`` is valid for ``host`` (one-label wildcards)."""
    host = host.lower()
    for name in names:
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.partition(".")[2] == name[2:]:
            return True
    return False


def parse_pair(chain_pem: bytes, key_pem: bytes) -> CertPair:
    """Check that ``key_pem`` is the private key of the first certificate in ``chain_pem``
    and that it is valid now; a :class:`BadCertificate` saying what is wrong otherwise."""
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError:
        raise BadCertificate(
            "The certificate file holds no PEM certificate (-----BEGIN CERTIFICATE-----); "
            "give the certificate (or full chain) file first, then the key."
        ) from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise BadCertificate(
            "The key file holds no unencrypted PEM private key; give the key the certificate "
            "was issued for (decrypt it first if it has a passphrase)."
        ) from None
    leaf = chain[0]
    ours = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    theirs = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if ours != theirs:
        raise BadCertificate(
            "The key does not belong to the certificate; give the key the certificate was "
            "issued for."
        )
    now = datetime.datetime.now(datetime.UTC)
    if leaf.not_valid_after_utc <= now:
        raise BadCertificate(
            f"The certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d}; give a current one."
        )
    chain_out = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    key_out = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return CertPair(key_out, chain_out, leaf)


def install(layout: CertLayout, host: str, pair: CertPair) -> Issued:
    """Write ``pair`` as ``host``'s certificate (0600, atomically); what the store records."""
    layout.prepare()
    atomic_write(layout.host_pem(host), pair.pem, mode=0o600)
    return pair.issued()
