"""Browser tests of the console: a real ``fairaudit serve`` process (the README's way, embedded SQLite
and its in-process job supervisor) driven by Debian's headless Chromium through Playwright.

No browser is downloaded: Playwright launches the system ``chromium`` (``.ci/run`` installs it when it
is missing). Outside CI a machine without it skips these tests and says why; in CI a missing browser fails.
Each test's screenshots go to ``test-output/console/<test>/`` (git-ignored). ``axe_scan`` runs the
vendored axe-core on the page and fails on serious or critical violations.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from console_support import ConsoleKeys, Setup, Shots
from live_server import LiveServer, live_server
from playwright.sync_api import Browser, Page, sync_playwright

from app.db.engine import make_engine
from app.db.migrate import upgrade_to_head
from app.settings import Settings

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "console"
VIEWPORT = {"width": 1280, "height": 900}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/console/" in str(item.path):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def console_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("console")
    settings = Settings(
        environment="test",
        database_url=f"sqlite:///{root / 'fairaudit.db'}",
        data_dir=root / "data",
        model_dir=root / "models",
        ingest_workers=1,
        bootstrap_resamples=200,
    )
    engine = make_engine(settings.database_url)
    upgrade_to_head(engine)
    engine.dispose()
    return settings


@pytest.fixture(scope="module")
def server(console_settings: Settings) -> Iterator[LiveServer]:
    """One server per test module: its tests share the database, so each creates what it needs."""
    with live_server(console_settings) as running:
        yield running


@pytest.fixture(scope="module")
def console_keys(console_settings: Settings) -> Iterator[ConsoleKeys]:
    keys = ConsoleKeys(console_settings)
    yield keys
    keys.engine.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed (apt install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    folder = OUTPUT / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return Shots(folder)


@pytest.fixture
def page(browser: Browser, server: LiveServer, shots: Shots, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context (its own sessionStorage) at desktop width. Browser console errors and
    an uncaught exception in a page's script fails the test; a failing test leaves a last screenshot."""
    context = browser.new_context(viewport=VIEWPORT, base_url=server.url)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
        shots(tab, "failure")
    context.close()
    assert not errors, f"uncaught errors in the console's scripts: {errors}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def setup(server: LiveServer, console_keys: ConsoleKeys) -> Iterator[Setup]:
    """An auditor's API client of the running server, to create what a page shows (see ``Setup``)."""
    made = Setup(server.url, console_keys.make("auditor"))
    yield made
    made.close()
