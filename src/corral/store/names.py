"""Validation of names users choose (apps, config keys, hostnames) and random app names.

Pure functions: each returns the accepted value or raises :class:`~corral.store.errors.Invalid`
with a sentence saying what is wrong and what to do.
"""

from __future__ import annotations

import re
import secrets

from corral.store.errors import Invalid

__all__ = [
    "PLATFORM_APP",
    "RESERVED_APP_NAMES",
    "RESERVED_CONFIG_KEYS",
    "random_app_name",
    "validate_app_name",
    "validate_config_key",
    "validate_config_value",
    "validate_hostname",
]

#: Names that would clash with the platform's own hostnames and routes.
#: The app name the platform's own services (API, router) are recorded and logged under.
PLATFORM_APP = "corral"
RESERVED_APP_NAMES = frozenset(
    {"api", "www", "admin", "corral", "git", "dashboard", "static", "localhost"}
)
#: Variables corral sets for every dyno; an app setting them would break routing.
RESERVED_CONFIG_KEYS = frozenset({"PORT", "DYNO"})

_APP_NAME = re.compile(r"[a-z][a-z0-9-]{1,29}")
_CONFIG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_APP_NAME_RULE = (
    "use 2 to 30 lowercase letters, digits and single hyphens, "
    "starting with a letter and not ending with a hyphen"
)

_ADJECTIVES = (
    "amber", "ancient", "autumn", "bold", "brave", "bright", "calm", "clever", "crisp",
    "dawn", "eager", "fancy", "gentle", "golden", "green", "hidden", "icy", "jolly",
    "lively", "lucky", "misty", "noble", "polished", "proud", "quiet", "rapid", "rustic",
    "shiny", "silent", "snowy", "solid", "still", "sunny", "swift", "tidy", "vast",
    "warm", "wild", "wise", "young",
)  # fmt: skip
_NOUNS = (
    "bay", "brook", "canyon", "cedar", "cliff", "cloud", "coast", "creek", "dune", "field",
    "forest", "glade", "grove", "harbor", "hill", "island", "lake", "leaf", "meadow", "mesa",
    "moon", "mountain", "oasis", "ocean", "peak", "pine", "plains", "pond", "prairie", "reef",
    "ridge", "river", "shore", "sky", "spring", "star", "stone", "sun", "valley", "wave",
)  # fmt: skip


def validate_app_name(name: str) -> str:
    """Return ``name`` if it can name an app (it becomes a hostname label and a directory)."""
    if not isinstance(name, str) or not name:
        raise Invalid(f"An app name is required: {_APP_NAME_RULE}.")
    if not _APP_NAME.fullmatch(name) or name.endswith("-") or "--" in name:
        raise Invalid(f"{name!r} is not a valid app name: {_APP_NAME_RULE}.")
    if name in RESERVED_APP_NAMES:
        raise Invalid(f"{name!r} is reserved by corral; pick another app name.")
    return name


def random_app_name() -> str:
    """A readable name such as ``quiet-river-4821`` that passes :func:`validate_app_name`."""
    adjective = secrets.choice(_ADJECTIVES)
    noun = secrets.choice(_NOUNS)
    return f"{adjective}-{noun}-{secrets.randbelow(9000) + 1000}"


def validate_config_key(key: str) -> str:
    """Return ``key`` if it is an environment variable name an app may set."""
    if not isinstance(key, str) or not _CONFIG_KEY.fullmatch(key):
        raise Invalid(
            f"{key!r} is not a valid config var name: use letters, digits and underscores, "
            "not starting with a digit (like SECRET_KEY)."
        )
    if key in RESERVED_CONFIG_KEYS:
        raise Invalid(f"{key} is set by corral for every dyno; use another config var name.")
    return key


def validate_config_value(key: str, value: str) -> str:
    """Return ``value`` if it can be placed in a process environment."""
    if not isinstance(value, str):
        raise Invalid(f"The value of {key} must be a string; quote it.")
    if "\0" in value:
        raise Invalid(f"The value of {key} contains a NUL character, which no environment allows.")
    return value


def validate_hostname(hostname: str) -> str:
    """Return ``hostname`` normalised (lowercase, no trailing dot) if it is a valid domain name."""
    host = hostname.strip().lower().removesuffix(".") if isinstance(hostname, str) else ""
    labels = host.split(".")
    if (
        len(host) > 253
        or len(labels) < 2
        or not all(_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise Invalid(
            f"{hostname!r} is not a valid hostname: give a domain name such as www.example.com."
        )
    return host
