"""Obtaining one certificate with ACME's HTTP-01 challenge, through certbot's ``acme`` library.

The protocol is the library's; corral keeps the account (its key and URL, in
``certs/account.json``, 0600, one per ACME directory), writes each challenge's key
authorization where the router answers it, and turns what went wrong into one sentence
for ``corral certs``.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path

import josepy as jose
import requests
from acme import challenges, client, errors, messages
from acme import crypto_util as acme_crypto
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from corral.certs.pem import CertPair, parse_pair
from corral.config import LETS_ENCRYPT
from corral.errors import UserError
from corral.files import atomic_write
from corral.router.acme_challenge import valid_token
from corral.router.tls import CertLayout

__all__ = ["AcmeOptions", "IssueFailed", "Issuer"]


@dataclass(frozen=True)
class AcmeOptions:
    """Which ACME server, as whom, trusting what."""

    directory: str = LETS_ENCRYPT
    email: str | None = None
    #: A CA bundle to trust the directory's TLS with (a test server such as pebble).
    ca_bundle: Path | None = None
    #: Seconds to wait for the challenge and the certificate, per host.
    timeout: float = 90.0


class IssueFailed(Exception):
    """Issuance of one host failed; the message says why in a sentence."""


def _reason(exc: Exception) -> str:
    if isinstance(exc, errors.ValidationError):
        details = [
            f"{c.error.detail or c.error.typ}"
            for authz in exc.failed_authzrs
            for c in authz.body.challenges
            if c.error is not None
        ]
        return "the HTTP-01 challenge failed: " + "; ".join(details or ["no detail given"])
    if isinstance(exc, messages.Error):
        return f"the ACME server refused: {exc.detail or exc.typ}"
    if isinstance(exc, errors.TimeoutError):
        return "the ACME server did not finish the order in time"
    if isinstance(exc, requests.exceptions.SSLError):
        return "the ACME server's TLS certificate is not trusted (pass --acme-ca-bundle?)"
    if isinstance(exc, requests.exceptions.RequestException):
        return f"the ACME server could not be reached ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"


class Issuer:
    """One ACME account, obtaining certificates host by host (blocking)."""

    def __init__(self, layout: CertLayout, options: AcmeOptions) -> None:
        self.layout = layout
        self.options = options
        self._client: client.ClientV2 | None = None

    @property
    def _account_path(self) -> Path:
        return self.layout.root / "account.json"

    def _acme(self) -> client.ClientV2:
        if self._client is not None:
            return self._client
        self.layout.prepare()
        saved = {}
        try:
            saved = json.loads(self._account_path.read_text())
        except FileNotFoundError:
            pass
        except ValueError:
            raise UserError(
                f"{self._account_path} is not JSON; remove it to register again."
            ) from None
        if "key" in saved:
            key = jose.JWKRSA.json_loads(json.dumps(saved["key"]))
        else:
            key = jose.JWKRSA(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
        verify: bool | str = str(self.options.ca_bundle) if self.options.ca_bundle else True
        net = client.ClientNetwork(key, user_agent="corral", verify_ssl=verify)  # type: ignore[arg-type]
        directory = client.ClientV2.get_directory(self.options.directory, net)
        acme = client.ClientV2(directory, net=net)
        account = saved.get("accounts", {}).get(self.options.directory)
        if account is not None:
            net.account = messages.RegistrationResource(uri=account, body=messages.Registration())
        else:
            registration = messages.NewRegistration.from_data(
                email=self.options.email, terms_of_service_agreed=True
            )
            regr = acme.new_account(registration)
            accounts = {**saved.get("accounts", {}), self.options.directory: regr.uri}
            data = {"key": json.loads(key.json_dumps()), "accounts": accounts}
            atomic_write(self._account_path, json.dumps(data, indent=1), mode=0o600)
        self._client = acme
        return acme

    def issue(self, host: str) -> CertPair:
        """A new key and a certificate for ``host``; :class:`IssueFailed` saying why not."""
        tokens: list[Path] = []
        try:
            acme = self._acme()
            key = ec.generate_private_key(ec.SECP256R1())
            key_pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            order = acme.new_order(acme_crypto.make_csr(key_pem, [host]))
            for authz in order.authorizations:
                tokens += self._answer(acme, authz)
            deadline = datetime.datetime.now() + datetime.timedelta(seconds=self.options.timeout)
            order = acme.poll_and_finalize(order, deadline=deadline)
            return parse_pair(order.fullchain_pem.encode(), key_pem)
        except (errors.Error, messages.Error, requests.exceptions.RequestException) as exc:
            self._client = (
                None if isinstance(exc, requests.exceptions.RequestException) else (self._client)
            )
            raise IssueFailed(_reason(exc)) from exc
        except (UserError, ValueError, KeyError) as exc:
            raise IssueFailed(_reason(exc)) from exc
        finally:
            for path in tokens:
                path.unlink(missing_ok=True)

    def _answer(self, acme: client.ClientV2, authz: messages.AuthorizationResource) -> list[Path]:
        if authz.body.status == messages.STATUS_VALID:
            return []  # the server remembers a recent success
        for challb in authz.body.challenges:
            if isinstance(challb.chall, challenges.HTTP01):
                response, validation = challb.response_and_validation(acme.net.key)
                token = challb.chall.encode("token")
                if not valid_token(token):
                    raise IssueFailed("the ACME server sent a token that is not base64url")
                path = self.layout.challenges / token
                atomic_write(path, validation, mode=0o600)
                acme.answer_challenge(challb, response)
                return [path]
        raise IssueFailed("the ACME server offered no HTTP-01 challenge")
