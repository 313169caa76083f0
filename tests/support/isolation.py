"""Apps' system users in tests: a prefix of the test's own, and none left behind."""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

needs_root = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="apps' own users need corral to run as root",
)


def unique_prefix() -> str:
    """A user-name prefix no other test (or real platform) uses."""
    return f"ct{secrets.token_hex(3)}-"


@contextmanager
def users_removed(prefix: str) -> Iterator[str]:
    """Yield ``prefix``; afterwards remove every user and group whose name starts with it."""
    try:
        yield prefix
    finally:
        tools = "/usr/sbin:/sbin:/usr/bin:/bin"
        for entry in pwd.getpwall():
            if entry.pw_name.startswith(prefix):
                userdel = shutil.which("userdel", path=tools) or "userdel"
                subprocess.run([userdel, entry.pw_name], capture_output=True, check=False)
        for group in grp.getgrall():
            if group.gr_name.startswith(prefix):
                groupdel = shutil.which("groupdel", path=tools) or "groupdel"
                subprocess.run([groupdel, group.gr_name], capture_output=True, check=False)
