"""Dashboard benchmark: server-side time to render the apps overview with 50 apps.

Run: ``.venv/bin/python bench/dashboard.py [--runs 7] [--apps 50] [--renders 50]``. It fills
a fresh store (in a temporary corral home) with ``--apps`` apps, each with three releases,
config vars, domains and two dynos, signs in with a real token, and times ``GET /``
through the WSGI app in this process: that is the whole server-side cost (session check,
store reads, Jinja), without the network. The baseline, measured in the same run, is the
overview with one app; an app's own page is timed too. Each figure is the median over
``--runs`` runs of the median of ``--renders`` renders. Target: 50-app overview < 100 ms.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

from corral.api import create_app
from corral.config import Settings
from corral.logfiles import LogLine, append_line
from corral.store import Dyno, Store

WEB = {"web": "gunicorn app:app", "worker": "python worker.py"}


def fill(store: Store, settings: Settings, apps: int) -> None:
    """``apps`` deployed apps with releases, config, domains, builds, dynos and some logs."""
    now = time.time()
    for index in range(apps):
        name = f"app-{index:03d}"
        store.create_app(name)
        for version in range(1, 4):
            slug = f"{name}-s{version}"
            build = store.create_build(name, f"Deploy {version:07x}")
            store.update_build(build.id, status="succeeded", slug_id=slug)
            store.create_release(name, slug, settings.slugs_dir(name) / slug, WEB, f"Deploy {slug}")
        store.set_config(name, {f"VAR_{n}": "x" * 20 for n in range(5)})
        store.scale(name, {"web": 2})
        store.add_domain(name, f"www.{name}.example.com")
        store.add_domain(name, f"{name}.example.org")
        for number in (1, 2):
            dyno = Dyno(name, f"web.{number}", "web", 4, None, None, None, "up", since=now)
            store.upsert_dyno(dyno)
        for line in range(100):
            stamp = f"2026-11-24T10:{line // 60:02d}:{line % 60:02d}.000000+00:00"
            append_line(
                settings.logs_dir(name), "web.1", LogLine(stamp, "app", "web.1", f"line {line}")
            )


def signed_in(app) -> object:
    client = app.test_client()
    with Store.for_settings(app.extensions["corral.settings"]) as store:
        secret = store.create_token("bench")[1]
    form = client.get("/login").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    assert client.post("/login", data={"csrf_token": csrf, "token": secret}).status_code == 302
    return client


def render_ms(client, path: str, renders: int) -> float:
    """Median milliseconds of ``renders`` GETs of ``path`` (each must answer 200)."""
    times = []
    for _ in range(renders):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--apps", type=int, default=50)
    parser.add_argument("--renders", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="corral-bench-dashboard-") as tmp:
        clients = {}
        for label, count in (("one", 1), ("many", args.apps)):
            settings = Settings.load(Path(tmp) / label)
            with Store.for_settings(settings) as store:
                fill(store, settings, count)
            clients[label] = signed_in(create_app(settings))
        for client in clients.values():  # warm up: templates compiled, store opened
            render_ms(client, "/", 5)
        figures: dict[str, list[float]] = {"one": [], "many": [], "page": []}
        for run in range(1, args.runs + 1):
            figures["one"].append(render_ms(clients["one"], "/", args.renders))
            figures["many"].append(render_ms(clients["many"], "/", args.renders))
            figures["page"].append(render_ms(clients["many"], "/apps/app-000", args.renders))
            print(
                f"run {run}: overview 1 app {figures['one'][-1]:6.2f} ms   "
                f"{args.apps} apps {figures['many'][-1]:6.2f} ms   "
                f"app page {figures['page'][-1]:6.2f} ms"
            )
    one, many, page = (statistics.median(figures[key]) for key in ("one", "many", "page"))
    print(f"\nmedians of {args.runs} runs x {args.renders} renders (server side, in process):")
    print(f"  overview, 1 app:        {one:6.2f} ms")
    print(f"  overview, {args.apps} apps:      {many:6.2f} ms  (target < 100 ms)")
    print(f"  {args.apps}-app / 1-app ratio: {many / one:6.2f}x")
    print(f"  app page (3 releases, 2 dynos, 100 log lines): {page:6.2f} ms")


if __name__ == "__main__":
    main()
