"""The dashboard in a real browser (Playwright driving Debian's Chromium) against a real
`corral server` with a real Flask app pushed to it with git.

Screenshots of every page are saved under the test's temporary directory (``shots/``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.server import Server, git
from support.wait import wait_until

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
APP = """import os
from flask import Flask, request
app = Flask(__name__)

@app.get("/")
def index():
    print(f"visit tag={request.args.get('tag', '')}", flush=True)
    return os.environ.get("GREETING", "hello v1")
"""

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs it with apt-get")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser, server: Server, tmp_path: Path):
    context = browser.new_context(base_url=f"http://localhost:{server.port}")
    context.set_default_timeout(30_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


class Shots:
    """Saves a full-page screenshot per step under ``tmp_path/shots``."""

    def __init__(self, page, directory: Path) -> None:
        self.page = page
        self.directory = directory
        directory.mkdir()

    def __call__(self, name: str) -> Path:
        path = self.directory / f"{len(list(self.directory.iterdir())) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def sign_in(page, server: Server) -> None:
    """Sign in with the keyboard alone: the token field has focus when the page opens."""
    page.goto("/login")
    # autofocus lands when the page has rendered, which may be after goto returns
    page.wait_for_function("document.activeElement && document.activeElement.id === 'token'")
    page.keyboard.type(server.token)
    page.keyboard.press("Enter")
    page.wait_for_url("**/")


def push_app(tmp_path: Path, server: Server, app: str) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "requirements.txt").write_text("flask\ngunicorn\n")
    (repo / "app.py").write_text(APP)
    (repo / "Procfile").write_text("web: gunicorn app:app\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    git(repo, "push", "-q", server.git_url(app), "main")


def serves(server: Server, app: str, text: str) -> bool:
    try:
        return server.app_get(app).text == text
    except httpx.TransportError:
        return False


def test_sign_in_deploy_scale_config_rollback_and_live_logs(
    page, server: Server, tmp_path: Path
) -> None:
    shot = Shots(page, tmp_path / "shots")
    page.goto("/")
    page.wait_for_url("**/login")
    shot("login")
    sign_in(page, server)
    assert page.locator("#no-apps").is_visible()
    shot("empty-overview")

    # create the app from the overview; its page shows the git lines to copy
    page.fill("#new-app-name", "shop")
    page.click("text=Create app")
    page.wait_for_url("**/apps/shop")
    assert "Created shop." in page.locator(".flash").inner_text()
    lines = page.locator("#git-lines").inner_text()
    assert f"git remote add corral http://localhost:{server.port}/git/shop.git" in lines
    shot("new-app")

    push_app(tmp_path, server, "shop")
    wait_until(lambda: serves(server, "shop", "hello v1"), message="shop serving v1")
    page.goto("/")
    row = page.locator('tr[data-app="shop"]')
    wait_until(
        lambda: page.reload() or row.locator('[data-status="up"]').count() == 1,
        timeout=30,
        message="shop shown up in the overview",
    )
    assert "v1" in row.inner_text() and "web 1" in row.inner_text()
    shot("overview")

    # scale web to 2 with the keyboard; the dynos table refreshes itself to show both
    page.click("text=shop")
    page.wait_for_url("**/apps/shop")
    page.focus("#scale-web")
    page.keyboard.press("Control+A")
    page.keyboard.type("2")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=Scaled web to 2.")
    page.wait_for_selector('tr[data-dyno="web.2"][data-state="up"]', timeout=60_000)
    assert page.locator('tr[data-dyno="web.1"][data-state="up"]').count() == 1
    assert "MB" in page.locator('tr[data-dyno="web.2"]').inner_text()  # RSS shown
    shot("scaled")

    # set a config var: a new release, the app serves it; values stay hidden until revealed
    page.fill("#config-key", "GREETING")
    page.fill("#config-value", "hola")
    page.click("#config-form button[type=submit]")
    page.wait_for_selector(
        "text=Set GREETING; shop is rolling out v2; the current release serves until it starts."
    )
    assert page.locator('tr[data-release="v2"]').count() == 1
    # the config shown is the current release's: GREETING appears once v2 is live
    wait_until(lambda: serves(server, "shop", "hola"), timeout=60, message="shop serving hola")
    wait_until(
        lambda: server.api.get("/apps/shop").json()["current_release"] == 2,
        timeout=30,
        message="v2 never became current",
    )
    page.reload()
    value = page.locator('tr[data-key="GREETING"] .config-value')
    assert value.inner_text() != "hola"
    page.click('tr[data-key="GREETING"] button.reveal')
    page.wait_for_function(
        "document.querySelector('tr[data-key=GREETING] .config-value').textContent === 'hola'"
    )
    shot("config")

    # roll back to v1, after confirming
    dialogs: list[str] = []

    def accept(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.click('tr[data-release="v1"] button:has-text("Roll back")')
    page.wait_for_selector("text=Rolling back to v1: v3 is rolling out;")
    assert dialogs and "Roll shop back to v1?" in dialogs[0]
    assert "Rollback to v1" in page.locator('tr[data-release="v3"]').inner_text()
    wait_until(lambda: serves(server, "shop", "hello v1"), timeout=60, message="v1 again")

    # declining the confirmation changes nothing
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click('tr[data-release="v2"] button:has-text("Roll back")')
    page.wait_for_timeout(300)
    assert page.locator('tr[data-release="v4"]').count() == 0

    # a line the app logs shows up in the live view without a reload, filtered to the app
    page.select_option("#log-source", "app")
    page.wait_for_selector("#log-status:has-text('live')")
    server.app_get("shop")  # warms nothing; the tagged request below is the one to see
    httpx.get(
        f"http://127.0.0.1:{server.port}/?tag=from-the-browser-test",
        headers={"Host": "shop.localhost"},
    )
    page.wait_for_selector("#log-panel .log-line:has-text('visit tag=from-the-browser-test')")
    panel = page.locator("#log-panel").inner_text()
    assert "router" not in panel.split("visit tag=from-the-browser-test")[0].splitlines()[-1]
    assert "source=app" in page.url
    shot("live-logs")

    # the build log of v1
    page.click('tr[data-release="v1"] a:has-text("build log")')
    page.wait_for_selector("#build-log")
    assert "Installing" in page.locator("#build-log").inner_text()
    shot("build-log")

    # the overview follows changes made elsewhere without a reload
    page.goto("/")
    page.wait_for_selector('tr[data-app="shop"] [data-status="up"]')
    server.api.patch("/apps/shop/formation", json={"web": 0}).raise_for_status()
    page.wait_for_selector('tr[data-app="shop"] [data-status="idle"]', timeout=30_000)


def test_bad_input_is_explained_on_the_page(page, server: Server, tmp_path: Path) -> None:
    sign_in(page, server)
    page.fill("#new-app-name", "No_Good")
    page.click("text=Create app")
    flash = page.locator(".flash.alert-danger")
    assert "lowercase" in flash.inner_text()
    page.fill("#new-app-name", "shop")
    page.click("text=Create app")
    page.wait_for_url("**/apps/shop")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("text=Turn maintenance on")
    page.wait_for_selector("text=Maintenance mode is on: visitors see the maintenance page.")
    wait_until(
        lambda: "undergoing maintenance" in server.app_get("shop").text,
        message="the maintenance page",
    )
    page.click("text=Turn maintenance off")
    page.wait_for_selector("text=Maintenance mode is off")
    page.fill("#domain-hostname", "not a hostname")
    page.click("#domain-form button[type=submit]")
    assert page.locator(".flash.alert-danger").count() == 1
    page.fill("#config-key", "1BAD")
    page.click("#config-form button[type=submit]")
    assert "config var" in page.locator(".flash.alert-danger").inner_text().lower()
    Shots(page, tmp_path / "shots")("error")


def test_pages_fit_a_375px_screen_and_every_field_has_a_label(
    browser, server: Server, tmp_path: Path
) -> None:
    context = browser.new_context(
        base_url=f"http://localhost:{server.port}", viewport={"width": 375, "height": 800}
    )
    page = context.new_page()
    shot = Shots(page, tmp_path / "shots")
    sign_in(page, server)
    server.api.post("/apps", json={"name": "tiny"}).raise_for_status()
    server.api.patch("/apps/tiny/config", json={"A_RATHER_LONG_CONFIG_VAR_NAME": "x" * 80})
    for path in ["/", "/apps/tiny"]:
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 375, f"{path} is {width}px wide on a 375px screen"
        unlabelled = page.evaluate(
            """[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                .filter((field) => field.labels.length === 0 && !field.getAttribute('aria-label'))
                .map((field) => field.id || field.name)"""
        )
        assert unlabelled == [], f"fields without a label on {path}: {unlabelled}"
        shot("mobile-" + (path.strip("/").replace("/", "-") or "overview"))
    context.close()
