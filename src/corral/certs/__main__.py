"""``python -m corral.certs --directory URL [--email E] [--ca-bundle FILE]``: the certificate
service, as the supervisor runs it (home and domain come in the environment)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from corral.certs.acme_client import AcmeOptions, Issuer
from corral.certs.policy import RenewPolicy
from corral.certs.service import CertService
from corral.config import LETS_ENCRYPT, Settings
from corral.router.tls import CertLayout
from corral.store import Store


def main(argv: list[str] | None = None) -> None:
    """Command line entry point of ``python -m corral.certs``."""
    parser = argparse.ArgumentParser(prog="python -m corral.certs", description=__doc__)
    parser.add_argument("--directory", default=LETS_ENCRYPT, help="the ACME directory URL")
    parser.add_argument("--email", default=None, help="the ACME account's contact address")
    parser.add_argument("--ca-bundle", type=Path, help="CA bundle the ACME server's TLS uses")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between rounds")
    parser.add_argument(
        "--renew-after", type=float, help="renew certificates this many seconds old (tests)"
    )
    args = parser.parse_args(argv)
    settings = Settings.load()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    layout = CertLayout(settings.certs_dir)
    issuer = Issuer(layout, AcmeOptions(args.directory, args.email, args.ca_bundle))
    service = CertService(
        settings,
        Store.for_settings(settings),
        issuer,
        RenewPolicy(renew_after=args.renew_after),
        say=lambda line: print(line, flush=True),
    )
    print(f"certs: ACME directory {args.directory}", file=sys.stderr, flush=True)
    service.run(stop, args.interval)


if __name__ == "__main__":
    main()
