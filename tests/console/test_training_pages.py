"""Training and jobs pages: a form built from the API's schema starts a job whose page follows it live to
success (curves per epoch, links to the model version and evaluation); the API's validation messages land
at their fields; a running job is cancelled; a predictor key cannot open the form."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from console_support import TRAIN, ConsoleKeys, Setup, Shots, axe_scan
from live_server import LiveServer
from playwright.sync_api import Page, expect

ORG = "Training Org"


def _open(page: Page, key: str, path: str) -> None:
    """Open a console page signed out: sign in on the way, as a person following a link does."""
    page.goto(path)
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{path}")


class Auditor(Setup):
    """An auditor of this module's organisation: the browser signs in with ``key``; the API client makes
    what the pages show."""

    def __init__(self, base_url: str, key: str) -> None:
        super().__init__(base_url, key)
        self.key = key


@pytest.fixture
def made(server: LiveServer, console_keys: ConsoleKeys) -> Iterator[Auditor]:
    auditor = Auditor(server.url, console_keys.make("auditor", org=ORG))
    yield auditor
    auditor.close()


def _fits_a_tablet(page: Page, shots: Shots, name: str) -> None:
    """At 800 px the page scrolls down only, never sideways."""
    page.set_viewport_size({"width": 800, "height": 1000})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "wider than a tablet"
    shots(page, name)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_an_auditor_starts_training_from_the_form_and_follows_it_to_success(
    page: Page, made: Auditor, shots: Shots, tmp_path: Path
) -> None:
    cohort = made.cohort(tmp_path, name="derm for training")
    _open(page, made.key, "/console/train")

    form = page.get_by_role("form", name="Training configuration")
    form.get_by_label("Cohort").select_option(cohort["id"])
    # the attributes are the chosen cohort's (from its summary), the first one checked
    expect(form.get_by_role("checkbox", name="skin_type")).to_be_checked()
    form.get_by_role("checkbox", name="skin_type").uncheck()
    form.get_by_role("checkbox", name="skin_tone").check()
    method = form.get_by_label("Method")
    assert {"erm", "pairwise_eo", "fair_multi_exit", "fair_multi_exit_pairwise_eo"} <= set(
        method.locator("option").evaluate_all("os => os.map(o => o.value)")
    )
    # the options and defaults come from the API document's schema
    expect(form.get_by_label("Epochs", exact=True)).to_have_value("20")
    assert form.get_by_label("Backbone").locator("option").all_inner_texts() == ["resnet18", "vgg11", "small"]
    method.select_option("fair_multi_exit_pairwise_eo")
    form.get_by_label("Backbone").select_option("small")
    form.get_by_label("Epochs", exact=True).fill("2")
    form.get_by_label("Batch size").fill("32")
    form.get_by_label("Learning rate (lr)").fill("0.002")
    form.get_by_label("Patience").fill("")
    form.get_by_text("More settings").click()
    form.get_by_label("Device").select_option("cpu")
    shots(page, "form")
    assert axe_scan(page) == []

    form.get_by_role("button", name="Start training").click()
    page.wait_for_url("**/console/jobs/job_*")
    job_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Training job {job_id}")
    expect(page.get_by_text("fair_multi_exit_pairwise_eo", exact=True)).to_be_visible()
    expect(page.locator(".job-status")).to_contain_text("running", timeout=60_000)
    expect(page.get_by_role("button", name="Cancel job")).to_be_visible()
    shots(page, "running")
    assert axe_scan(page) == []

    expect(page.locator(".job-status")).to_contain_text("succeeded", timeout=180_000)
    expect(page.get_by_role("progressbar", name="Training progress")).to_have_attribute("value", "1")
    loss = page.get_by_role("figure").filter(has_text="Training loss per epoch")
    validation = page.get_by_role("figure").filter(has_text="Validation AUC and PFD per epoch")
    expect(loss.get_by_role("img")).to_be_visible()
    expect(validation.get_by_role("img")).to_be_visible()
    expect(loss.get_by_role("listitem").filter(has_text="hinge loss")).to_be_visible()  # pairwise_eo's own curve
    validation.get_by_text("Show the numbers").click()
    numbers = validation.get_by_role("table")
    expect(numbers.get_by_role("columnheader", name="validation PFD")).to_be_visible()
    expect(numbers.locator("tbody tr")).to_have_count(2)
    expect(page.get_by_role("button", name="Cancel job")).to_be_hidden()

    job = made.client.get(f"/v1/jobs/{job_id}").json()
    model = page.get_by_role("link", name=job["result"]["model_version_id"])
    evaluation = page.get_by_role("link", name=job["result"]["evaluation_id"])
    expect(model).to_have_attribute("href", f"/console/models/{job['result']['model_version_id']}")
    expect(evaluation).to_have_attribute("href", f"/console/evaluations/{job['result']['evaluation_id']}")
    assert job["config"]["epochs"] == 2 and job["config"]["backbone"] == "small" and job["config"]["patience"] is None
    shots(page, "succeeded")
    assert axe_scan(page) == []
    _fits_a_tablet(page, shots, "succeeded-tablet")

    page.goto("/console/jobs")
    row = page.get_by_role("table", name="Jobs").get_by_role("row").filter(has=page.get_by_role("link", name=job_id))
    expect(row).to_contain_text("succeeded")
    expect(row.get_by_role("progressbar")).to_have_attribute("value", "1")
    page.get_by_label("Status").select_option("failed")
    expect(page.get_by_role("link", name=job_id)).to_have_count(0)
    assert "status=failed" in page.url
    page.get_by_label("Status").select_option("succeeded")
    expect(page.get_by_role("link", name=job_id)).to_be_visible()
    shots(page, "jobs")
    assert axe_scan(page) == []
    page.get_by_role("link", name=job_id).click()
    page.wait_for_url(f"**/console/jobs/{job_id}")


def test_an_invalid_config_shows_the_apis_messages_at_their_fields(
    page: Page, made: Auditor, shots: Shots, tmp_path: Path
) -> None:
    made.cohort(tmp_path, name="derm for a bad config")
    _open(page, made.key, "/console/train")
    form = page.get_by_role("form", name="Training configuration")
    form.get_by_label("Epochs", exact=True).fill("0")
    form.get_by_label("Learning rate (lr)").fill("-0.1")
    form.get_by_role("button", name="Start training").click()

    epochs, lr = form.get_by_label("Epochs", exact=True), form.get_by_label("Learning rate (lr)")
    expect(epochs).to_have_attribute("aria-invalid", "true")
    expect(lr).to_have_attribute("aria-invalid", "true")
    expect(epochs).to_have_accessible_description("Input should be greater than or equal to 1")
    expect(lr).to_have_accessible_description("Input should be greater than 0")
    expect(form.get_by_role("alert")).to_be_visible()
    assert "/console/train" in page.url
    shots(page, "refused")
    assert axe_scan(page) == []
    _fits_a_tablet(page, shots, "refused-tablet")

    # not valid JSON in the advanced box: refused at that box before anything is sent
    epochs.fill("2")
    lr.fill("0.001")
    form.get_by_label("Advanced (JSON)").fill("{not json")
    form.get_by_role("button", name="Start training").click()
    expect(form.get_by_label("Advanced (JSON)")).to_have_attribute("aria-invalid", "true")
    expect(epochs).not_to_have_attribute("aria-invalid", "true")
    # a setting only the JSON box holds is checked by the API too, and named at that box
    form.get_by_label("Advanced (JSON)").fill('{"augment": {"rotate_degrees": 90}}')
    form.get_by_role("button", name="Start training").click()
    expect(form.get_by_role("alert")).to_contain_text("rotate_degrees")
    shots(page, "refused-advanced")

    # a fairness term alone (multi_exit + terms): its settings appear, and a teacher the API cannot use is named there
    form.get_by_label("Advanced (JSON)").fill("")
    teacher = form.get_by_label("Teacher model version")
    expect(teacher).to_be_hidden()
    form.get_by_label("Method").select_option("multi_exit+mfd")
    expect(form.get_by_label("Term weight (λ)")).to_be_visible()
    teacher.fill("mdl_nowhere")
    form.get_by_role("button", name="Start training").click()
    expect(teacher).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field-error")).to_have_count(1)
    shots(page, "refused-teacher")


def test_a_running_job_is_cancelled_from_its_page(page: Page, made: Auditor, shots: Shots, tmp_path: Path) -> None:
    cohort = made.cohort(tmp_path, n=400, name="derm to cancel")
    body = {**TRAIN, "cohort_id": cohort["id"], "epochs": 200, "batch_size": 8}
    response = made.client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    made.wait(f"/v1/jobs/{job_id}", "queued", "running", timeout=120)

    _open(page, made.key, f"/console/jobs/{job_id}")
    expect(page.locator(".job-status")).to_contain_text("running")
    words = page.locator(".progress-words")
    expect(words).to_contain_text(re.compile(r"epoch \d+ of 200"), timeout=60_000)  # live from the stream
    shots(page, "running")
    assert axe_scan(page) == []

    # away to the list mid-stream (the stream is closed, no error) and back (followed again)
    page.get_by_role("navigation").get_by_role("link", name="Jobs").click()
    row = page.get_by_role("table", name="Jobs").get_by_role("row").filter(has=page.get_by_role("link", name=job_id))
    expect(row).to_contain_text("running")
    expect(row).to_contain_text("of 200")
    shots(page, "jobs-running")
    page.go_back()
    expect(words).to_contain_text("of 200")

    page.get_by_role("button", name="Cancel job").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Cancel the job {job_id}?")
    shots(page, "confirm")
    dialog.get_by_role("button", name="Cancel job").click()
    expect(page.locator(".job-status")).to_contain_text("cancelled", timeout=60_000)
    expect(page.get_by_text("The job was cancelled")).to_be_visible()
    expect(words).to_contain_text("cancelled in epoch")
    expect(page.get_by_role("button", name="Cancel job")).to_be_hidden()
    assert made.client.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
    shots(page, "cancelled")
    assert axe_scan(page) == []


def test_a_predictor_cannot_open_the_training_form(page: Page, console_keys: ConsoleKeys, shots: Shots) -> None:
    _open(page, console_keys.make("predictor", org=ORG), "/console/train")
    expect(page.get_by_role("alert")).to_have_text("A predictor key cannot open this page.")
    expect(page.get_by_role("form")).to_have_count(0)
    expect(page.get_by_role("navigation").get_by_role("link", name="Train")).to_be_hidden()
    shots(page, "refused")
