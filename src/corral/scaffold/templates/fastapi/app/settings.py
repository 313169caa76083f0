"""Settings from the environment: `.env` for `corral local`, config vars deployed."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    greeting: str

    @classmethod
    def from_environ(cls) -> Settings:
        return cls(
            greeting=os.environ.get("GREETING") or "Hello from __PROJECT_NAME__!"
        )
