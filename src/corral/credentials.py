"""The saved server URL and API token, shared by the CLI (which reads them) and the server.

``corral login`` and the first ``corral server`` start write them; every CLI command reads
them. They live outside :mod:`corral.cli` so the server can write them without importing
the CLI. The file is the owner's only (0600 in a 0700 directory); the token is never printed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from corral.errors import UserError
from corral.files import atomic_write

__all__ = ["Credentials", "credentials_path", "normalize_server"]

_NOT_LOGGED_IN = (
    "Not logged in; run `corral login --server URL` (or set $CORRAL_SERVER and $CORRAL_TOKEN)."
)


def credentials_path() -> Path:
    """Where ``corral login`` saves the server and token: ``$CORRAL_CREDENTIALS`` or ~/.config."""
    chosen = os.environ.get("CORRAL_CREDENTIALS")
    if chosen:
        return Path(chosen).expanduser()
    return Path.home() / ".config" / "corral" / "credentials.json"


def normalize_server(url: str) -> str:
    """``url`` with a scheme (http by default) and without a trailing slash."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = f"http://{url}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"{url} is not a server URL; pass one like http://127.0.0.1:8080.")
    return url


@dataclass(frozen=True)
class Credentials:
    """The server the CLI talks to and the bearer token it presents."""

    server: str
    token: str

    @classmethod
    def read_file(cls, path: Path | None = None) -> dict[str, str]:
        """The saved credentials as a dict (empty when nothing is saved)."""
        path = path or credentials_path()
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise UserError(
                f"Cannot read the credentials file {path} ({exc}); "
                "log in again with `corral login --server URL`."
            ) from None
        return data if isinstance(data, dict) else {}

    @classmethod
    def load(cls) -> Credentials:
        """``$CORRAL_SERVER``/``$CORRAL_TOKEN`` first, else the credentials file."""
        env_server = os.environ.get("CORRAL_SERVER")
        env_token = os.environ.get("CORRAL_TOKEN")
        saved = {} if env_server and env_token else cls.read_file()
        server = normalize_server(env_server) if env_server else saved.get("server")
        token = env_token
        if not token and saved.get("token"):
            # Never send the saved token to a server other than the one it was saved for.
            saved_server = str(saved.get("server") or "")
            if env_server and (not saved_server or normalize_server(saved_server) != server):
                raise UserError(
                    f"$CORRAL_SERVER is {server} but the saved token is for another server; "
                    f"set $CORRAL_TOKEN too, or log in with `corral login --server {server}`."
                )
            token = saved["token"]
        if not server or not token:
            raise UserError(_NOT_LOGGED_IN)
        return cls(server=normalize_server(str(server)), token=str(token))

    def save(self, path: Path | None = None) -> Path:
        """Write the credentials readable by the owner only (file 0600, directory 0700)."""
        path = path or credentials_path()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        text = json.dumps({"server": self.server, "token": self.token}, indent=2) + "\n"
        atomic_write(path, text, mode=0o600)
        return path

    def __repr__(self) -> str:
        return f"Credentials(server={self.server!r}, token='***')"
