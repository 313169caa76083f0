"""What the add-ons' tests need of the host: PostgreSQL's programs (skipped without them,
except in CI, which installs them)."""

from __future__ import annotations

import os

import pytest

from corral.addons.cluster import find_programs
from corral.config import Settings
from corral.errors import UserError


def _postgresql_missing() -> bool:
    try:
        find_programs(Settings.load("/nonexistent"))
    except UserError:
        return True
    return False


needs_postgresql = pytest.mark.skipif(
    _postgresql_missing() and not os.environ.get("CI"),
    reason="PostgreSQL is not installed (apt-get install postgresql)",
)
