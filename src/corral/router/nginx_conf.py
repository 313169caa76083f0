"""nginx's configuration written from the route table: the production router's whole setup.

Pure: :func:`render` turns a :class:`~corral.router.table.RouteTable` and
:class:`NginxOptions` into the text of one ``nginx.conf``. It serves what the embedded
router serves, the same way: an upstream per app (its web dynos, with keep-alive), a
server block per app naming ``<app>.<domain>`` and its custom domains, the platform's
hosts to the API (its log streams to the streams service, unbuffered), the same error
pages with the same Heroku codes, ``X-Forwarded-*`` and ``X-Request-Id``, WebSocket
upgrades, bodies buffered up to ``max_body``. Each request's log record goes to the
watcher (:mod:`corral.router.nginx`) over a Unix socket, which writes the app's
``router.log`` line exactly as the embedded router does (:mod:`corral.router.nginx_log`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from corral.router.context import Timeouts
from corral.router.nginx_log import FIELDS
from corral.router.pages import FAILURES, no_backend_failure, render_page
from corral.router.table import AppRoute, RouteTable

__all__ = ["NginxOptions", "TlsSite", "render", "upstream_dynos"]


@dataclass(frozen=True)
class TlsSite:
    """A host served over HTTPS with its certificate: the seam for corral's certificates."""

    host: str
    cert: Path
    key: Path


@dataclass(frozen=True)
class NginxOptions:
    """How nginx listens and where it keeps its files (all under ``prefix``)."""

    host: str
    port: int
    prefix: Path
    #: The watcher's datagram socket the access log records go to.
    log_socket: Path
    workers: int = 2
    max_body_mb: int = 512
    #: Connections one client address may hold open (0: any number), as the embedded's.
    client_connections: int = 256
    timeouts: Timeouts = field(default_factory=Timeouts)
    #: Run the workers as root: set when the platform runs as root (see :func:`render`).
    root: bool = False
    #: Hosts with a certificate: each also gets an HTTPS server block on ``https_port``.
    tls: tuple[TlsSite, ...] = ()
    https_port: int = 443


# A request id a client sent is kept when it looks like one (Heroku's rule, as the
# embedded router's); otherwise nginx's own (32 hex digits, like the embedded router's).
_MAPS = r"""
    map $http_x_request_id $corral_request_id {
        "~^[A-Za-z0-9+/=_.:-]{20,200}$" $http_x_request_id;
        default $request_id;
    }
    map $http_via $corral_via {
        "" "1.1 corral";
        default "$http_via, 1.1 corral";
    }
    map $http_upgrade $corral_connection {
        default upgrade;
        "" "";
    }
    map $host $corral_host_html {
        "~^[a-z0-9.:_\[\]-]+$" $host;
        default "this address";
    }
    # no dyno accepted the connection (H10), or one closed it without answering (H13)
    map $upstream_connect_time $corral_refused {
        "~(^|\s)-$" 1;
        default "";
    }
"""

# What the embedded router's pages say for nginx's own answers to bad requests: the
# status nginx gives them, the page's failure and its reason.
_REFUSALS = {
    400: ("bad_request", "The request is not valid HTTP/1.1; fix the client"),
    414: ("uri_too_long", "The request line is too long; shorten the URL"),
    494: ("headers_too_large", "The request headers are too large; send fewer or shorter"),
}
#: The failures whose pages an app's state decides (no dyno asked).
_STATES = ("maintenance", "crashed", "no_dynos", "no_web")


def _quote(text: str) -> str:
    """``text`` as one nginx string: quoted, with quotes and backslashes escaped."""
    if "$" in text:
        raise ValueError(f"{text!r} would be read as an nginx variable")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_RID = "\x00request-id\x00"
_HOST = "\x00host\x00"


def _pages(options: NginxOptions) -> str:
    """Each page once, as ``$corral_page`` for the ``$corral_failure`` a location sets
    (a map's value may hold variables: the request id, the host)."""
    limit = f"The request body is larger than the router's limit of {options.max_body_mb} MB"
    reasons = {name: reason for name, reason in _REFUSALS.values()} | {"body_too_large": limit}
    lines = []
    for name in ("no_app", "refused", "closed", "timeout", *_STATES, *reasons):
        values = (
            {"host": _HOST}
            if name == "no_app"
            else {"reason": reasons[name]}
            if name in reasons
            else {}
        )
        body = render_page(FAILURES[name], request_id=_RID, **values).decode()
        text = _quote(body).replace(_RID, "${corral_request_id}")
        lines.append(f"        {name} {text.replace(_HOST, '${corral_host_html}')};\n")
    return (
        '    map $corral_failure $corral_page {\n        default "";\n' + "".join(lines) + "    }\n"
        # the pages are never cached; a dyno's own answers keep their headers
        '    map $corral_failure $corral_page_cache {\n        default "no-cache, no-store";\n'
        '        "" "";\n        client_gone "";\n    }\n'
    )


def _answer(failure: str, status: int, indent: str = "            ") -> str:
    return f"{indent}set $corral_failure {failure};\n{indent}return {status} $corral_page;\n"


def _error_pages() -> str:
    """What every server block does with nginx's own failures: corral's pages."""
    parts = [
        "        error_page 502 = @bad_gateway;\n",
        "        error_page 504 = @timeout;\n",
        "        error_page 413 = @body_too_large;\n",
        *(f"        error_page {status} = @{name};\n" for status, (name, _) in _REFUSALS.items()),
        "        location @bad_gateway {\n"
        "            set $corral_failure closed;\n"
        "            if ($corral_refused) {\n"
        "                set $corral_failure refused;\n"
        "            }\n"
        "            return 503 $corral_page;\n"
        "        }\n",
        f"        location @timeout {{\n{_answer('timeout', 503)}        }}\n",
        f"        location @body_too_large {{\n{_answer('body_too_large', 413)}        }}\n",
    ]
    for status, (name, _) in _REFUSALS.items():
        answer = _answer(name, 431 if status == 494 else status)  # nginx's 494 is HTTP's 431
        parts.append(f"        location @{name} {{\n{answer}        }}\n")
    return "".join(parts)


def _upstream_name(app: str, kind: str = "web") -> str:
    return f"corral_{kind}_{app}"


def _upstreams(table: RouteTable) -> str:
    parts = []
    for name, route in sorted(table.apps.items()):
        for kind, backends in (("web", route.backends), ("streams", route.streams)):
            if not backends:
                continue
            servers = "".join(f"        server {b.host}:{b.port};\n" for b in backends)
            parts.append(
                f"    upstream {_upstream_name(name, kind)} {{\n{servers}"
                f"        keepalive 32;\n    }}\n"
            )
    return "".join(parts)


def upstream_dynos(table: RouteTable) -> dict[str, str]:
    """``"<app> host:port"`` of each backend -> its dyno's name, for the log lines."""
    return {
        f"{app} {b.host}:{b.port}": b.dyno
        for app, route in table.apps.items()
        for b in (*route.backends, *route.streams)
    }


#: The platform's long-lived GET requests (the embedded router's ``_STREAM_PATH``).
_STREAM_LOCATION = r"~ ^(/api/v1/apps/[^/]+/logs|/apps/[^/]+/logs/stream)$"


def _proxy(upstream: str) -> str:
    return f"proxy_pass http://{upstream};"


def _locations(route: AppRoute) -> str:
    """What an app's server block does with a request: proxy it, or answer with a page."""
    if route.maintenance:
        failure = "maintenance"
    elif not route.backends:
        failure = no_backend_failure(crashed=route.crashed, has_web=route.has_web)
    else:
        web = _upstream_name(route.app)
        # an upgraded connection (``corral run``'s WebSocket) may stay quiet for long: it
        # is not held to the request timeout, as the embedded router's tunnel is not
        text = (
            "        error_page 418 = @upgrade;\n"
            "        location / {\n"
            '            if ($http_upgrade != "") {\n                return 418;\n            }\n'
            f"            {_proxy(web)}\n"
            "        }\n"
            "        location @upgrade {\n"
            "            proxy_read_timeout 1d;\n"
            "            proxy_send_timeout 1d;\n"
            f"            {_proxy(web)}\n"
            "        }\n"
        )
        if route.streams:
            streams = _upstream_name(route.app, "streams")
            text += (
                f"        location {_STREAM_LOCATION} {{\n"
                "            proxy_buffering off;\n"
                "            proxy_read_timeout 1d;\n"
                f"            if ($request_method != GET) {{\n                {_proxy(web)}\n"
                "            }\n"
                f"            {_proxy(streams)}\n"
                "        }\n"
            )
        return text
    return f"        location / {{\n{_answer(failure, FAILURES[failure].status)}        }}\n"


_NAME = re.compile(r"[a-z0-9.*_\[\]:-]+")


def _server_names(table: RouteTable) -> dict[str, list[str]]:
    """app -> the host names of its server block: ``<app>.<domain>`` and custom domains."""
    names: dict[str, list[str]] = {app: [f"{app}.{table.domain}".lower()] for app in table.apps}
    for host, app in sorted(table.custom_domains.items()):
        if app in names and _NAME.fullmatch(host) and host not in names[app]:
            names[app].append(host)
    return names


def _listen(options: NginxOptions, *, default: bool = False, tls: TlsSite | None = None) -> str:
    where = f"[{options.host}]" if ":" in options.host else options.host
    if tls is None:
        flag = " default_server" if default else ""
        return f"        listen {where}:{options.port}{flag};\n"
    return (
        f"        listen {where}:{options.https_port} ssl;\n"
        f"        ssl_certificate {_quote(str(tls.cert))};\n"
        f"        ssl_certificate_key {_quote(str(tls.key))};\n"
    )


def _log(options: NginxOptions) -> str:
    where = _quote(f"syslog:server=unix:{options.log_socket},nohostname")
    return f"        access_log {where} corral;\n"


def _server(
    app: str, names: list[str], route: AppRoute, options: NginxOptions, tls: TlsSite | None
) -> str:
    """An app's server block: over HTTP for all its names, or over HTTPS for one."""
    return (
        "    server {\n"
        f"{_listen(options, tls=tls)}"
        f"        server_name {' '.join(names)};\n"
        f"        set $corral_app {_quote(app)};\n"
        '        set $corral_failure "";\n'
        f"{_log(options)}"
        f"{_locations(route)}"
        f"{_error_pages()}"
        "    }\n"
    )


def _no_app(options: NginxOptions) -> str:
    return (
        "    server {\n"
        f"{_listen(options, default=True)}"
        "        server_name _;\n"
        '        set $corral_app "";\n'
        '        set $corral_failure "";\n'
        f"{_log(options)}"
        f"        location / {{\n{_answer('no_app', 404)}        }}\n"
        f"{_error_pages()}"
        "    }\n"
    )


def _main(options: NginxOptions) -> str:
    prefix = options.prefix
    t = options.timeouts
    fields = "\\t".join(FIELDS)
    temps = "".join(
        f"    {kind}_temp_path {_quote(str(prefix / kind))};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        "# Written by corral from its route table; replaced at every change: do not edit.\n"
        "daemon off;\n"
        f"worker_processes {options.workers};\n"
        # the platform's router reaches every app's dynos, as the embedded one (root) does
        + ("user root root;\n" if options.root else "")
        + f"pid {_quote(str(prefix / 'nginx.pid'))};\n"
        # nginx's own trouble (to the platform's log); a dyno's is in the app's router.log
        "error_log stderr crit;\n"
        "events {\n    worker_connections 4096;\n}\n"
        "http {\n"
        f"{temps}"
        f"    log_format corral escape=default '{fields}';\n"
        "    server_tokens off;\n"
        "    server_names_hash_bucket_size 128;\n"
        "    server_names_hash_max_size 8192;\n"
        f"    client_max_body_size {options.max_body_mb}m;\n"
        f"    client_header_timeout {t.header:g}s;\n"
        f"    client_body_timeout {t.idle:g}s;\n"
        f"    keepalive_timeout {t.keepalive:g}s;\n"
        f"    send_timeout {t.idle:g}s;\n"
        f"    proxy_connect_timeout {t.connect:g}s;\n"
        f"    proxy_read_timeout {t.request:g}s;\n"
        f"    proxy_send_timeout {t.idle:g}s;\n"
        + (
            "    limit_conn_zone $binary_remote_addr zone=corral_clients:10m;\n"
            f"    limit_conn corral_clients {options.client_connections};\n"
            "    limit_conn_status 503;\n"
            if options.client_connections
            else ""
        )
        + "    proxy_next_upstream error timeout;\n"
        "    proxy_http_version 1.1;\n"
        "    proxy_set_header Host $http_host;\n"
        "    proxy_set_header Upgrade $http_upgrade;\n"
        "    proxy_set_header Connection $corral_connection;\n"
        "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
        "    proxy_set_header X-Forwarded-Proto $scheme;\n"
        "    proxy_set_header X-Forwarded-Port $server_port;\n"
        "    proxy_set_header X-Request-Id $corral_request_id;\n"
        "    proxy_hide_header X-Request-Id;\n"
        "    proxy_set_header Via $corral_via;\n"
        "    add_header X-Request-Id $corral_request_id always;\n"
        '    add_header Via "1.1 corral" always;\n'
        "    add_header Cache-Control $corral_page_cache always;\n"
        # what a page says it is (a dyno's answer says what it is itself)
        '    default_type "text/html; charset=utf-8";\n'
        f"{_MAPS}"
        f"{_pages(options)}"
    )


def render(table: RouteTable, options: NginxOptions) -> str:
    """The whole ``nginx.conf`` serving ``table``."""
    names = _server_names(table)
    servers = []
    for app, route in sorted(table.apps.items()):
        servers.append(_server(app, names[app], route, options, None))
        # one HTTPS block per host with a certificate, since a block has one certificate
        servers += [
            _server(app, [site.host], route, options, site)
            for site in options.tls
            if site.host in names[app]
        ]
    return _main(options) + _upstreams(table) + _no_app(options) + "".join(servers) + "}\n"
