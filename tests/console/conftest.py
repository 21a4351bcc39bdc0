"""The console in a real browser: Debian's Chromium, headless, driven by Playwright's Python
package (its driver ships in the wheel; no browser is ever downloaded), against a real
``solarfleet serve`` on the test database. Users and units come from the in-process ``factory``.

A missing browser or Playwright is a skip, which SOLARFLEET_REQUIRE_SERVICES=1 (CI) turns into a
failure. SOLARFLEET_TEST_CHROMIUM names the browser (default: ``chromium`` on PATH).

Every test that calls ``shoot`` saves the screen at 1280x800 and at 360 px wide under
``tests/console/screenshots/`` (git-ignored; SOLARFLEET_CONSOLE_SCREENSHOTS moves it).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from solarfleet.settings import Settings
from tests.factories import PASSWORD
from tests.faults.services import Server

SCREENSHOTS = Path(
    os.environ.get("SOLARFLEET_CONSOLE_SCREENSHOTS", Path(__file__).parent / "screenshots")
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000  # a shared CI machine under load: plotly.js alone is 4.8 MB to parse


def chromium() -> str:
    chosen = os.environ.get("SOLARFLEET_TEST_CHROMIUM")
    found = chosen or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found or not Path(found).exists():
        pytest.skip("no Chromium (Debian package chromium; or set SOLARFLEET_TEST_CHROMIUM)")
    return found


# A module's browser, not the session's: Playwright's sync API keeps an event loop running in the
# main thread while it is open, and later tests call asyncio.run().
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright's Python package is not installed (the test extras)")
    executable = chromium()
    with sync_playwright() as playwright:
        # Playwright gives each launch a fresh --user-data-dir of its own.
        launched = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


def console_server(settings: Settings, folder: Path, **env: str) -> Server:
    """A server on the test database with a data folder of its own: its hot store and archive
    start empty, and the in-process app's (which later tests read) stay untouched."""
    return Server(folder, SOLARFLEET_DATABASE_URL=settings.effective_database_url, **env)


@pytest.fixture(scope="module")
def served(
    app: Any, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    server = console_server(settings, tmp_path_factory.mktemp("console"))
    yield server
    server.stop()


@pytest.fixture
def page(browser: Any, served: Server) -> Iterator[Any]:
    """A fresh browser context (no token stored) at 1280x800; browser errors fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=served.url)
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert not errors, f"errors in the page: {errors}"


@pytest.fixture
def api(served: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=30) as client:
        yield client


def sign_in(page: Any, username: str, at: str = "#/fleet", password: str = PASSWORD) -> None:
    """Open the console at ``at``, sign in there and wait to be back at ``at``."""
    page.goto(f"/console/{at}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("form button[type=submit]")
    page.wait_for_selector("#who:not([hidden])")


def token_of(page: Any) -> str:
    stored = page.evaluate("JSON.parse(localStorage.getItem('solarfleet.console.session'))")
    return str(stored["token"])


Shoot = Callable[..., None]


@pytest.fixture
def shoot() -> Shoot:
    """Save the page as ``<name>-1280.png`` (1280x800) and ``<name>-360.png`` (360 px wide,
    loaded afresh at that width), full height, once ``ready`` (a selector) is shown."""

    def take(page: Any, name: str, ready: str = "main") -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for width in (1280, 360):
            page.set_viewport_size({"width": width, "height": 800})
            if width != 1280:
                page.reload()
            page.wait_for_selector(ready)
            page.wait_for_timeout(300)  # let the charts' transitions settle
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 800})

    return take
