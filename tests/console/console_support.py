"""What the console's browser tests share besides fixtures: keys, screenshots, sign-in, the axe scan."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page
from sqlalchemy.orm import Session, sessionmaker

from app.auth.service import create_key, ensure_organisation
from app.db.engine import make_engine, make_session_factory, transaction
from app.settings import Settings

AXE = Path(__file__).parent / "vendor" / "axe.min.js"


class ConsoleKeys:
    """Plain API keys of one organisation (or another), made directly in the server's database."""

    def __init__(self, settings: Settings) -> None:
        self.engine = make_engine(settings.database_url)
        self.factory: sessionmaker[Session] = make_session_factory(self.engine)

    def make(self, role: str = "admin", org: str = "St Elsewhere", name: str = "") -> str:
        with transaction(self.factory) as session:
            organisation = ensure_organisation(session, org)
            _, plaintext = create_key(session, organisation.id, role, name or f"{role} key")
        return plaintext


class Shots:
    """Numbered screenshots of one test: ``test-output/console/<test>/<n>-<name>.png``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    def __call__(self, page: Page, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


def sign_in(page: Page, key: str) -> None:
    """Sign in through the form, as a person does, and wait for the landing page's navigation."""
    page.goto("/console/signin")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/")


def axe_scan(page: Page) -> list[dict[str, object]]:
    """Run axe-core on the page as it is now; answer the serious and critical violations. The script
    is evaluated through the DevTools protocol, so the page's Content-Security-Policy stays on."""
    page.evaluate(AXE.read_text())
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
