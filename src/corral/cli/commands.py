"""Which module under ``corral.cli`` defines each command, and what ``--version`` says.

Plain data, so the entry point can hold it without importing click or any command.
"""

from __future__ import annotations

from corral import __version__

__all__ = ["COMMAND_MODULES", "VERSION"]

#: What ``corral --version`` prints (click's ``version_option`` wording).
VERSION = f"corral, version {__version__}"

#: Each command's module under ``corral.cli``, in the order ``corral --help`` lists them.
COMMAND_MODULES: dict[str, str] = {
    "build": "build",
    "new": "new",
    "local": "local",
    "local:run": "local",
    "env": "local",
    "server": "server",
    "login": "auth",
    "logout": "auth",
    "whoami": "auth",
    "apps": "apps",
    "apps:create": "apps",
    "apps:info": "apps",
    "apps:destroy": "apps",
    "apps:rename": "apps",
    "open": "apps",
    "maintenance": "apps",
    "maintenance:on": "apps",
    "maintenance:off": "apps",
    "git:remote": "git",
    "git:credential": "git",
    "config": "config",
    "config:get": "config",
    "config:set": "config",
    "config:unset": "config",
    "releases": "releases",
    "releases:info": "releases",
    "releases:output": "releases",
    "rollback": "releases",
    "freeze": "releases",
    "ps": "ps",
    "ps:scale": "ps",
    "ps:restart": "ps",
    "ps:stop": "ps",
    "ps:kill": "ps",
    "ps:memory": "ps",
    "logs": "logs",
    "domains": "domains",
    "domains:add": "domains",
    "domains:remove": "domains",
    "certs": "certs",
    "certs:add": "certs",
    "certs:remove": "certs",
    "certs:refresh": "certs",
    "certs:hsts": "certs",
    "deploy": "deploy",
    "run": "deploy",
    "addons": "addons",
    "addons:create": "addons",
    "addons:info": "addons",
    "addons:attach": "addons",
    "addons:detach": "addons",
    "addons:destroy": "addons",
    "pg:psql": "pg",
    "pg:info": "pg",
    "pg:credentials:rotate": "pg",
    "pg:backups": "pg",
    "pg:backups:capture": "pg",
    "pg:backups:restore": "pg",
    "pg:backups:download": "pg",
    "pg:backups:schedule": "pg",
    "pg:backups:unschedule": "pg",
    "redis:cli": "redis",
    "redis:info": "redis",
    "help": "help",
    "run:detached": "deploy",
}
