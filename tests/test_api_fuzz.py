"""schemathesis against a real `corral server`: every operation of the OpenAPI document,
with data the schema allows and data it forbids, answers as the document says (no 5xx,
no schema-valid request refused, no schema-violating one accepted, every answer in the
documented shape).

Bounded: a few dozen examples per operation, one worker, no stateful phase, a request
timeout; it runs in well under a minute. Operations act on throwaway apps:
``fuzz`` for all of them, ``doomed`` for the rename and the delete (the first success
takes it away, later ones answer 404). Neither has a release, so no one-off or build ever
runs a generated command, and neither has an add-on (creating one is left out). ``tail``
is pinned to 0 (a tail streams until the client leaves), and the attached ``GET .../run``,
``.../psql`` and ``.../redis-cli`` are left out: each is a WebSocket handshake, not a
request and answer (tests/test_run.py, tests/test_addons.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from support.server import Server

pytestmark = pytest.mark.slow

CONFIG = """
[generation]
max-examples = {examples}

[phases.stateful]
enabled = false

[parameters]
"path.app" = "fuzz"
"query.tail" = "0"

[[operations]]
include-name = ["PATCH /api/v1/apps/{{app}}", "DELETE /api/v1/apps/{{app}}"]
parameters = {{ "path.app" = "doomed" }}

[[operations]]
include-name = ["GET /api/v1/apps/{{app}}/run", "GET /api/v1/apps/{{app}}/psql",
                "GET /api/v1/apps/{{app}}/redis-cli", "POST /api/v1/apps/{{app}}/addons"]
enabled = false

# Whether a string is a certificate and the key its own is past what a schema can say:
# any string is schema-valid there, and what is not a usable pair is refused with 422.
[[operations]]
include-name = "POST /api/v1/apps/{{app}}/certs"
checks.positive_data_acceptance.expected-statuses = ["201", "404", "422"]
"""
#: Operations left out: the three WebSockets, and creating add-ons (each a real server;
#: tests/test_addons.py, tests/test_redis_addons.py and tests/test_addons_api.py cover it).
LEFT_OUT = 4
#: Examples per operation and phase: enough to find each of the issue's cases again.
EXAMPLES = 25


def test_the_api_does_what_its_openapi_document_says(server: Server, tmp_path: Path) -> None:
    with server.api as api:
        for name in ("fuzz", "doomed"):
            assert api.post("/apps", json={"name": name}).status_code == 201
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.format(examples=EXAMPLES))
    url = f"http://127.0.0.1:{server.port}/api/v1/openapi.json"
    run = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", url,
         "--header", f"Authorization: Bearer {server.token}", "--workers", "1",
         "--request-timeout", "10", "--max-failures", "20", "--seed", "12"],
        cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    report = run.stdout + run.stderr
    assert run.returncode == 0, report
    tested = re.search(r"Tested:\s+(\d+)", report)
    operations = re.search(r"(\d+) selected / (\d+) total", report)
    assert tested and operations, report
    assert int(tested.group(1)) == int(operations.group(2)) - LEFT_OUT, report
    assert not re.search(r"\b[1-9]\d* (failures?|errors?)\b", report), report
    # and no bug behind any answer: the API logs each 500 it gives as "unexpected error"
    api_log = (server.home / "logs" / "corral" / "api.log").read_text()
    assert "unexpected error" not in api_log
