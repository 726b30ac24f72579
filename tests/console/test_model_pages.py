"""Models, a model version (gate and promotion), try-it and monitoring pages, in headless Chromium.

One model is trained for the module's organisation (``Models Org``, no fairness policy) and shared by
the tests that only read it or predict with it; the refused promotion trains its own in an
organisation with a policy, so no test depends on another's order.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from console_support import ConsoleKeys, Setup, Shots, axe_scan
from live_server import LiveServer, wait_for
from playwright.sync_api import Page, expect

ORG = "Models Org"
TABLET = {"width": 800, "height": 1000}


@dataclass
class Trained:
    setup: Setup
    model: dict[str, Any]
    image: Path


def _sign_in_at(page: Page, path: str, key: str) -> None:
    page.goto(path)
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{path}")


def _first_image(archive: Path, out: Path) -> Path:
    with zipfile.ZipFile(archive) as z:
        name = next(n for n in z.namelist() if n.endswith((".jpg", ".png")))
        out.write_bytes(z.read(name))
    return out


def _train(setup: Setup, folder: Path) -> dict[str, Any]:
    cohort = setup.cohort(folder)
    job = setup.train(cohort["id"])
    model = setup.client.get(f"/v1/models/{job['result']['model_version_id']}").json()
    assert model["evaluation_id"] == job["result"]["evaluation_id"]
    return dict(model)


@pytest.fixture(scope="module")
def trained(
    server: LiveServer, console_keys: ConsoleKeys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Trained]:
    folder = tmp_path_factory.mktemp("models")
    setup = Setup(server.url, console_keys.make("auditor", org=ORG))
    model = _train(setup, folder)
    yield Trained(setup, model, _first_image(folder / "derm-160.zip", folder / "lesion.jpg"))
    setup.close()


def _fits_tablet(page: Page, shots: Shots, name: str) -> None:
    page.set_viewport_size(TABLET)
    wide = page.evaluate(
        """w => [...document.querySelectorAll('main *')]
             .filter(n => n.getBoundingClientRect().right > w + 1 && !n.closest('.table-scroll'))
             .slice(0, 5).map(n => n.tagName + '.' + n.className + ' ' + n.textContent.slice(0, 40))""",
        TABLET["width"],
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= TABLET["width"], (
        f"horizontal scroll at 800 px: {wide}"
    )
    shots(page, f"{name}-tablet")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_models_list_model_page_and_promotion_without_policy(
    page: Page, trained: Trained, console_keys: ConsoleKeys, shots: Shots
) -> None:
    model = trained.model
    _sign_in_at(page, "/console/models", console_keys.make("auditor", org=ORG))
    versions = page.get_by_role("table", name="Model versions")
    row = versions.get_by_role("row").filter(has_text=model["id"])
    expect(row).to_contain_text("erm")
    expect(row).to_contain_text("small")
    expect(row).to_contain_text("binary")
    expect(row).to_contain_text(model["sha256"][:12])
    row.locator("details.sha summary").click()  # the full SHA-256, one click away
    expect(row.get_by_text(model["sha256"], exact=True)).to_be_visible()
    shots(page, "models")
    assert axe_scan(page) == []
    _fits_tablet(page, shots, "models")

    row.get_by_role("link", name=model["id"]).click()
    page.wait_for_url(f"**/console/models/{model['id']}")
    expect(page.get_by_role("heading", name=f"Model version {model['id']}")).to_be_visible()
    manifest = page.get_by_role("region", name="Manifest")
    expect(manifest).to_contain_text("binary")
    expect(manifest).to_contain_text(model["sha256"])
    expect(manifest.get_by_role("table", name="Exits")).to_contain_text("final")
    evaluation = page.get_by_role("table", name="Evaluations of this version").get_by_role("link").first
    expect(evaluation).to_have_attribute("href", f"/console/evaluations/{model['evaluation_id']}")
    expect(page.get_by_text("Gate for production: no policy")).to_be_visible()
    shots(page, "model")
    assert axe_scan(page) == []
    _fits_tablet(page, shots, "model")

    page.get_by_label("Alias", exact=True).fill("staging")
    page.get_by_role("button", name="Check the gate").click()
    expect(page.get_by_text("Gate for staging: no policy")).to_be_visible()
    page.get_by_role("button", name="Promote").click()
    expect(page.get_by_role("status").filter(has_text=f"staging now points at {model['id']}")).to_be_visible()
    expect(page.get_by_role("region", name="Version")).to_contain_text("promoted")
    history = page.get_by_role("table", name="History of staging")
    expect(history.get_by_role("row").filter(has_text=model["id"])).to_contain_text("no policy")
    shots(page, "promoted")
    assert axe_scan(page) == []

    page.goto("/console/models")
    aliases = page.get_by_role("table", name="Aliases")
    expect(aliases.get_by_role("row").filter(has_text="staging")).to_contain_text(model["id"])
    shots(page, "alias-listed")


def test_a_failing_policy_refuses_promotion_and_an_admin_overrides_it(
    page: Page, server: LiveServer, console_keys: ConsoleKeys, shots: Shots, tmp_path: Path
) -> None:
    org = "Gate Org"
    admin = console_keys.make("admin", org=org)
    setup = Setup(server.url, console_keys.make("auditor", org=org))
    try:
        model = _train(setup, tmp_path)
        policy = {"attributes": ["skin_tone"], "checks": [{"check": "limit", "metric": "auc", "min": 0.99}]}
        put = httpx.put(f"{server.url}/v1/policies", json=policy, headers={"Authorization": f"Bearer {admin}"})
        assert put.status_code == 200, put.text
    finally:
        setup.close()

    _sign_in_at(page, f"/console/models/{model['id']}", admin)
    expect(page.get_by_role("table", name="Gate checks")).to_contain_text("limit: auc overall ≥ 0.99")
    page.get_by_label("Alias", exact=True).fill("Bad_Name")
    page.get_by_role("button", name="Check the gate").click()
    expect(page.get_by_label("Alias", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field-error")).to_contain_text("invalid alias name")
    shots(page, "bad-alias")

    page.get_by_label("Alias", exact=True).fill("production")
    page.get_by_role("button", name="Promote").click()
    expect(page.get_by_role("alert")).to_contain_text("Promotion refused")
    expect(page.get_by_role("alert")).to_contain_text("the deployment gate refuses")
    failed = page.get_by_role("table", name="Checks that did not pass")
    expect(failed).to_contain_text("limit: auc overall ≥ 0.99")
    expect(failed).to_contain_text("overall auc")
    shots(page, "refused")
    assert axe_scan(page) == []
    assert (
        httpx.get(
            f"{server.url}/v1/models/aliases/production/history", headers={"Authorization": f"Bearer {admin}"}
        ).json()["items"]
        == []
    )

    page.get_by_label("Override reason (admins only)").fill("interim model approved by the board")
    page.get_by_role("button", name="Promote").click()
    expect(page.get_by_role("status").filter(has_text="production now points at")).to_contain_text(
        "gate overridden: interim model approved by the board"
    )
    expect(page.get_by_role("table", name="History of production")).to_contain_text("interim model approved")
    shots(page, "overridden")

    # a prediction through the alias carries the override in its provenance
    page.get_by_role("button", name="Sign out").click()
    _sign_in_at(page, "/console/predict", console_keys.make("predictor", org=org))
    page.get_by_label("Model or alias").fill("production")
    page.get_by_label("Image", exact=True).set_input_files(
        str(_first_image(tmp_path / "derm-160.zip", tmp_path / "a.jpg"))
    )
    page.get_by_role("button", name="Predict").click()
    provenance = page.locator("dl.provenance")
    expect(provenance).to_contain_text("production")
    expect(provenance).to_contain_text("yes: interim model approved by the board")
    shots(page, "predicted-through-overridden-alias")


def test_a_predictor_tries_a_model_and_sees_probability_exit_and_provenance(
    page: Page, trained: Trained, console_keys: ConsoleKeys, shots: Shots, tmp_path: Path
) -> None:
    model = trained.model
    _sign_in_at(page, "/console/predict", console_keys.make("predictor", org=ORG))
    nav = page.get_by_role("navigation", name="Console")
    expect(nav.get_by_role("link", name="Try it")).to_be_visible()
    expect(nav.get_by_role("link", name="Models")).to_be_hidden()
    ref = page.get_by_label("Model or alias")
    assert ref.evaluate("n => n.tagName") == "INPUT"  # a predictor cannot list models: free text
    shots(page, "form")
    assert axe_scan(page) == []

    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    ref.fill(model["id"])
    page.get_by_label("Image", exact=True).set_input_files(str(bad))
    page.get_by_role("button", name="Predict").click()
    expect(page.get_by_label("Image", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field-error")).to_contain_text("not a PNG, JPEG or DICOM image")
    expect(page.get_by_role("alert")).to_contain_text("1 of 1 images cannot be used")
    shots(page, "bad-file")

    page.get_by_label("Image", exact=True).set_input_files(str(trained.image))
    page.get_by_label("Demographic attribute 1").fill("skin_tone")
    page.get_by_label("Group for attribute 1").fill("dark")
    page.get_by_role("button", name="Predict").click()
    expect(page.get_by_role("heading", name="Prediction for lesion.jpg")).to_be_visible()
    result = page.locator("dl.prediction")
    expect(result).to_contain_text(re.compile(r"Probability\s*0\.\d{3}"))
    expect(result).to_contain_text("operating threshold")
    expect(result).to_contain_text("exit 1 (index 0")
    provenance = page.locator("dl.provenance")
    expect(provenance).to_contain_text(model["id"])
    expect(provenance).to_contain_text(model["sha256"])
    expect(provenance).to_contain_text(model["evaluation_id"])
    expect(provenance).to_contain_text("Gate override")
    shots(page, "predicted")
    assert axe_scan(page) == []
    _fits_tablet(page, shots, "predict")


def test_a_reader_picks_the_model_from_a_list(page: Page, trained: Trained, console_keys: ConsoleKeys) -> None:
    _sign_in_at(page, "/console/predict", console_keys.make("auditor", org=ORG))
    select = page.get_by_label("Model or alias")
    assert select.evaluate("n => n.tagName") == "SELECT"
    select.select_option(trained.model["id"])
    expect(page.get_by_label("Demographic attribute 1")).to_have_value("skin_tone")


def _predict(setup: Setup, model_id: str, image: Path, group: str) -> str:
    with image.open("rb") as fh:
        response = setup.client.post(
            f"/v1/models/{model_id}/predict",
            files={"images": ("x.jpg", fh)},
            data={"demographics": json.dumps([{"skin_tone": group}])},
        )
    assert response.status_code == 200, response.text
    return str(response.json()["predictions"][0]["id"])


def test_monitoring_shows_live_counts_metrics_and_alerts(
    page: Page, trained: Trained, console_keys: ConsoleKeys, shots: Shots
) -> None:
    setup, model = trained.setup, trained.model
    rule = {
        "name": "Score drift across skin tone",
        "model_ref": model["id"],
        "rule": {"check": "drift", "signal": "psi", "attribute": "skin_tone", "max": 0.0001},
        "min_n": 1,
        "min_interval_seconds": 1,
    }
    created = setup.client.post("/v1/alert-rules", json=rule)
    assert created.status_code == 201, created.text
    before = setup.client.get(f"/v1/models/{model['id']}/monitoring").json()
    for k in range(6):
        prediction = _predict(setup, model["id"], trained.image, ("dark", "light")[k % 2])
        posted = setup.client.post(f"/v1/predictions/{prediction}/outcome", json={"outcome": k % 2})
        assert posted.status_code == 200, posted.text
    n = before["n_predictions"] + 6
    wait_for(lambda: setup.client.get(f"/v1/alerts?model_id={model['id']}").json()["items"], timeout=30)

    _sign_in_at(page, f"/console/monitoring?ref={model['id']}", console_keys.make("auditor", org=ORG))
    counts = page.get_by_role("group", name="Counts of the window")
    expect(counts).to_contain_text(f"Predictions: {n}")
    expect(counts).to_contain_text(f"With an outcome: {before['n_with_outcome'] + 6}")
    expect(page.get_by_role("table", name="tpr by skin_tone: live against the audit")).to_contain_text("dark")
    expect(page.get_by_role("img", name=re.compile("tpr by skin_tone over time"))).to_be_visible()
    expect(page.get_by_role("table", name="Predictions by skin_tone (0 without a value)")).to_be_visible()
    expect(page.get_by_role("table", name=re.compile("Score drift per group"))).to_contain_text("skin_tone")
    alerts = page.get_by_role("table", name="Alerts, this model's first")
    expect(alerts.get_by_role("row").filter(has_text=model["id"]).first).to_contain_text("firing")
    shots(page, "monitoring")
    assert axe_scan(page) == []

    _predict(setup, model["id"], trained.image, "light")  # the page refreshes by itself
    expect(counts).to_contain_text(f"Predictions: {n + 1}", timeout=15_000)
    page.get_by_label("Metric over time").select_option("fpr")
    figure = page.locator("figure").filter(has_text="fpr by skin_tone over time")
    figure.get_by_text("Show the numbers").click()
    expect(figure.get_by_role("table")).to_contain_text("dark (audit)")
    shots(page, "monitoring-refreshed")
    _fits_tablet(page, shots, "monitoring")

    # hidden (another tab, a minimised window): no more refreshes until it is visible again
    calls: list[str] = []
    page.on("request", lambda r: calls.append(r.url) if "/monitoring" in r.url and "/v1/" in r.url else None)
    page.evaluate(
        "() => { Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )
    page.wait_for_timeout(7_000)
    assert calls == []
    page.evaluate(
        "() => { Object.defineProperty(document, 'hidden', {value: false, configurable: true});"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )
    page.wait_for_timeout(500)
    assert len(calls) == 1
