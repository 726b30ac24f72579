"""What the console's browser tests share besides fixtures: keys, screenshots, sign-in, the axe scan."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page
from sqlalchemy.orm import Session, sessionmaker

from app.auth.service import create_key, ensure_organisation
from app.cohorts.synth.derm import write_derm_archive
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


class Setup:
    """What a page's test needs to exist before the browser opens it, made through the API of the running
    server (the same calls the console makes): a ready synthetic cohort, a trained model. Each test makes
    its own, so the tests of one module (one server) do not depend on each other's order."""

    def __init__(self, base_url: str, key: str) -> None:
        self.client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=120)

    def close(self) -> None:
        self.client.close()

    def cohort(self, folder: Path, n: int = 160, image_size: int = 32, name: str = "synthetic derm") -> dict[str, Any]:
        """A ready binary derm cohort (planted skin-tone bias), uploaded and ingested."""
        archive = write_derm_archive(folder / f"derm-{n}.zip", n=n, seed=5, image_size=image_size)
        config = {"name": name, "preset": "fitzpatrick17k", "image_size": image_size}
        with archive.open("rb") as fh:
            response = self.client.post(
                "/v1/cohorts", files={"archive": ("derm.zip", fh)}, data={"config": json.dumps(config)}
            )
        assert response.status_code == 202, response.text
        return self.wait(f"/v1/cohorts/{response.json()['id']}", "ingesting", "ready")

    def train(self, cohort_id: str, **overrides: Any) -> dict[str, Any]:
        """A finished training job (small backbone, 1 epoch, tiny images): its result names the model
        version and the evaluation."""
        body = {**TRAIN, "cohort_id": cohort_id, **overrides}
        response = self.client.post("/v1/jobs", json=body)
        assert response.status_code == 202, response.text
        return self.wait(f"/v1/jobs/{response.json()['id']}", ("queued", "running"), "succeeded", timeout=600)

    def wait(self, path: str, busy: str | tuple[str, ...], wanted: str, timeout: float = 300) -> dict[str, Any]:
        busy = (busy,) if isinstance(busy, str) else busy
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            resource = self.client.get(path).json()
            if resource["status"] not in busy:
                assert resource["status"] == wanted, resource
                return dict(resource)
            time.sleep(0.5)
        raise TimeoutError(f"{path} still {busy} after {timeout} s")


TRAIN: dict[str, Any] = {
    "method": "erm",
    "sensitive_attributes": ["skin_tone"],
    "backbone": "small",
    "epochs": 1,
    "batch_size": 32,
    "lr": 0.002,
    "seed": 3,
    "patience": None,
}
