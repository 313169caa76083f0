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
from corral.router.nginx_pages import answer, error_pages, page_maps, quote
from corral.router.pages import FAILURES, no_backend_failure
from corral.router.table import AppRoute, RouteTable

__all__ = ["NginxOptions", "TlsSite", "render", "upstream_dynos"]


@dataclass(frozen=True)
class TlsSite:
    """A host served over HTTPS with its certificate: the seam for corral's certificates."""

    host: str
    cert: Path
    key: Path
    #: Send ``Strict-Transport-Security`` on its HTTPS answers.
    hsts: bool = False


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
    #: Where HTTPS is served (None: plain HTTP only), with a certificate for names
    #: without one of their own (``fallback``: one PEM file, key and chain).
    https: tuple[str, int] | None = None
    fallback: Path | None = None
    #: Hosts with a certificate: each gets an HTTPS server block, and is redirected there.
    tls: tuple[TlsSite, ...] = ()
    #: Where the certificate service leaves HTTP-01 answers (one file per token).
    challenges: Path | None = None


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
    return f"        location / {{\n{answer(failure, FAILURES[failure].status)}        }}\n"


_NAME = re.compile(r"[a-z0-9.*_\[\]:-]+")


def _server_names(table: RouteTable) -> dict[str, list[str]]:
    """app -> the host names of its server block: ``<app>.<domain>`` and custom domains."""
    names: dict[str, list[str]] = {app: [f"{app}.{table.domain}".lower()] for app in table.apps}
    for host, app in sorted(table.custom_domains.items()):
        if app in names and _NAME.fullmatch(host) and host not in names[app]:
            names[app].append(host)
    return names


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listen(options: NginxOptions, *, default: bool = False, tls: TlsSite | None = None) -> str:
    flag = " default_server" if default else ""
    if tls is None:
        return f"        listen {_where(options.host, options.port)}{flag};\n"
    assert options.https is not None
    text = (
        f"        listen {_where(*options.https)} ssl{flag};\n"
        f"        ssl_certificate {quote(str(tls.cert))};\n"
        f"        ssl_certificate_key {quote(str(tls.key))};\n"
    )
    if tls.hsts:  # a server's own add_header lines replace http's: all said again
        text += (
            "        add_header X-Request-Id $corral_request_id always;\n"
            '        add_header Via "1.1 corral" always;\n'
            "        add_header Cache-Control $corral_page_cache always;\n"
            '        add_header Strict-Transport-Security "max-age=31536000" always;\n'
        )
    return text


def _http_front(options: NginxOptions) -> str:
    """On plain HTTP: ACME's challenge path, then a redirect for hosts with a certificate."""
    if options.https is None:
        return ""
    text = ""
    if options.challenges is not None:
        text += (
            "        location ^~ /.well-known/acme-challenge/ {\n"
            f"            alias {quote(str(options.challenges) + '/')};\n"
            "            default_type text/plain;\n"
            "        }\n"
        )
    port = "" if options.https[1] == 443 else f":{options.https[1]}"
    return text + (
        '        if ($corral_challenge = "bad") {\n            return 404;\n        }\n'
        "        if ($corral_redirect) {\n"
        f"            return 308 https://$host{port}$request_uri;\n"
        "        }\n"
    )


def _tls_maps(options: NginxOptions) -> str:
    """``$corral_redirect``: the request is for a host with a certificate, not a challenge."""
    if options.https is None:
        return ""
    hosts = "".join(f"        {quote(site.host)} 1;\n" for site in options.tls)
    return (
        f'    map $host $corral_secure {{\n        default "";\n{hosts}    }}\n'
        # a token as the embedded router checks it (RFC 8555's alphabet); anything else
        # under the path is no challenge of ours (404), never a file outside the directory
        '    map $request_uri $corral_challenge {\n        default "";\n'
        '        "~^/\\.well-known/acme-challenge/[A-Za-z0-9_-]{16,256}$" ok;\n'
        '        "~^/\\.well-known/acme-challenge/" bad;\n    }\n'
        '    map "$corral_secure:$corral_challenge" $corral_redirect {\n'
        '        default "";\n        "1:" 1;\n    }\n'
    )


def _log(options: NginxOptions) -> str:
    where = quote(f"syslog:server=unix:{options.log_socket},nohostname")
    return f"        access_log {where} corral;\n"


def _server(
    app: str, names: list[str], route: AppRoute, options: NginxOptions, tls: TlsSite | None
) -> str:
    """An app's server block: over HTTP for all its names, or over HTTPS for one."""
    return (
        "    server {\n"
        f"{_listen(options, tls=tls)}"
        f"        server_name {' '.join(names)};\n"
        f"        set $corral_app {quote(app)};\n"
        '        set $corral_failure "";\n'
        f"{_log(options)}"
        f"{_http_front(options) if tls is None else ''}"
        f"{_locations(route)}"
        f"{error_pages()}"
        "    }\n"
    )


def _no_app(options: NginxOptions, tls: TlsSite | None = None) -> str:
    return (
        "    server {\n"
        f"{_listen(options, default=True, tls=tls)}"
        "        server_name _;\n"
        '        set $corral_app "";\n'
        '        set $corral_failure "";\n'
        f"{_log(options)}"
        f"{_http_front(options) if tls is None else ''}"
        f"        location / {{\n{answer('no_app', 404)}        }}\n"
        f"{error_pages()}"
        "    }\n"
    )


def _main(options: NginxOptions) -> str:
    prefix = options.prefix
    t = options.timeouts
    fields = "\\t".join(FIELDS)
    temps = "".join(
        f"    {kind}_temp_path {quote(str(prefix / kind))};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        "# Written by corral from its route table; replaced at every change: do not edit.\n"
        "daemon off;\n"
        f"worker_processes {options.workers};\n"
        # the platform's router reaches every app's dynos, as the embedded one (root) does
        + ("user root root;\n" if options.root else "")
        + f"pid {quote(str(prefix / 'nginx.pid'))};\n"
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
        f"{_tls_maps(options)}"
        f"{page_maps(options.max_body_mb)}"
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
    if options.https is not None and options.fallback is not None:  # names without their own
        servers.append(_no_app(options, TlsSite("", options.fallback, options.fallback)))
    return _main(options) + _upstreams(table) + _no_app(options) + "".join(servers) + "}\n"
