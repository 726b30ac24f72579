"""Cohorts pages: the list (the console's landing page), the upload form with its two progress bars, the
cohort page's label × group chart and small-group warnings, delete with confirmation; bad input shown at
its field; a predictor is refused."""

from __future__ import annotations

import json
import re
from pathlib import Path

from console_support import ConsoleKeys, Setup, Shots, axe_scan, sign_in
from playwright.sync_api import Locator, Page, expect

from app.cohorts.synth.cxr_findings import cohort_config as findings_config
from app.cohorts.synth.cxr_findings import write_findings_archive
from app.cohorts.synth.derm import cohort_config, write_derm_archive

ORG = "Cohorts Org"


def _auditor(page: Page, console_keys: ConsoleKeys) -> None:
    sign_in(page, console_keys.make("auditor", org=ORG))
    expect(page.get_by_role("heading", name="Upload a cohort")).to_be_visible()


def _fill(page: Page, archive: Path | dict[str, object], name: str, image_size: str = "32") -> None:
    page.get_by_label("Archive (.zip or .tar.gz)").set_input_files(archive)  # type: ignore[arg-type]
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Preset").select_option("fitzpatrick17k")
    page.get_by_label("Image size (pixels)").fill(image_size)


def _figure(page: Page, title: str) -> Locator:
    """The chart whose caption is ``title`` (titles of intersections contain their attributes' titles)."""
    return page.locator("figure.chart").filter(has=page.get_by_text(title, exact=True))


def test_an_auditor_uploads_a_cohort_and_watches_both_bars_reach_done(
    page: Page, console_keys: ConsoleKeys, shots: Shots, tmp_path: Path
) -> None:
    archive = write_derm_archive(tmp_path / "derm.zip", n=160, seed=11, image_size=32)
    _auditor(page, console_keys)
    expect(page.get_by_role("heading", name="Cohorts of your organisation")).to_be_visible()
    shots(page, "list")
    assert axe_scan(page) == []

    _fill(page, archive, "derm from the form")
    network = page.context.new_cdp_session(page)  # a slow link (~190 kB at 64 kB/s): the upload bar moves
    network.send("Network.enable")
    conditions = {"offline": False, "latency": 0, "downloadThroughput": -1}
    network.send("Network.emulateNetworkConditions", {**conditions, "uploadThroughput": 64_000})
    page.get_by_role("button", name="Upload cohort").click()
    expect(page.get_by_text(re.compile(r"Uploading… [1-9]\d? % of"))).to_be_visible()
    sent = float(page.get_by_role("progressbar", name="Upload").get_attribute("value") or 0)
    assert 0 < sent < 1
    shots(page, "uploading")
    assert axe_scan(page) == []
    network.send("Network.emulateNetworkConditions", {**conditions, "uploadThroughput": -1})
    expect(page.get_by_text("Upload done")).to_be_visible()
    expect(page.get_by_role("progressbar", name="Upload")).to_have_attribute("value", "1")
    expect(page.get_by_text("Ingestion done: 160 items ready.")).to_be_visible(timeout=60_000)
    expect(page.get_by_role("progressbar", name="Ingestion")).to_have_attribute("value", "1")
    row = page.get_by_role("table", name="Cohorts").get_by_role("row").filter(has_text="derm from the form")
    expect(row.get_by_role("cell", name="ready")).to_be_visible()
    shots(page, "upload-done")
    assert axe_scan(page) == []
    page.set_viewport_size({"width": 800, "height": 1000})
    expect(row).to_be_visible()
    shots(page, "upload-done-tablet")

    page.get_by_role("link", name='Open the cohort "derm from the form"').click()
    page.wait_for_url("**/console/cohorts/coh_*")
    expect(page.get_by_role("heading", name="Cohort: derm from the form", level=1)).to_be_visible()
    expect(page.get_by_role("img", name=re.compile(r"^skin_tone: label × group counts, all splits"))).to_be_visible()


def test_the_cohort_page_shows_the_chart_and_warnings_and_deletes_after_confirmation(
    page: Page, console_keys: ConsoleKeys, setup: Setup, shots: Shots, tmp_path: Path
) -> None:
    setup.client.headers["Authorization"] = f"Bearer {console_keys.make('auditor', org=ORG)}"
    cohort = setup.cohort(tmp_path, name="derm for the page")
    _auditor(page, console_keys)
    page.goto(f"/console/cohorts/{cohort['id']}")
    expect(page.get_by_role("heading", name="Cohort: derm for the page", level=1)).to_be_visible()
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text("ready")
    expect(facts).to_contain_text("binary")
    expect(facts).to_contain_text("skin_type, skin_tone")

    chart = _figure(page, "skin_tone: label × group counts, all splits")
    expect(chart.get_by_role("img")).to_be_visible()
    chart.get_by_text("Show the numbers").click()
    numbers = chart.get_by_role("table", name="skin_tone: label × group counts, all splits")
    expect(numbers.get_by_role("columnheader", name="positive (label 1)")).to_be_visible()
    expected = sum(
        c["count"]
        for c in cohort["summary"]["groupings"]["skin_tone"]["cells"]
        if c["group"]["skin_tone"] == "dark" and c["label"] == 1
    )
    expect(numbers.get_by_role("row").filter(has_text="dark")).to_contain_text(str(expected))
    assert page.locator("figure.chart").count() == len(cohort["summary"]["groupings"])

    page.get_by_label("Split", exact=True).select_option("test")
    expect(_figure(page, "skin_tone: label × group counts, test")).to_be_visible()

    warnings = cohort["summary"]["warnings"]
    assert warnings  # 160 items: some groups are small
    expect(page.get_by_role("heading", name=f"Small-group warnings ({len(warnings)})")).to_be_visible()
    warning_table = page.get_by_role("table", name="Small-group warnings")
    expect(warning_table.get_by_role("cell", name=warnings[0]["message"], exact=True)).to_be_visible()
    expect(page.get_by_role("table", name="Items per split")).to_be_visible()
    shots(page, "cohort")
    assert axe_scan(page) == []
    page.set_viewport_size({"width": 800, "height": 1000})
    shots(page, "cohort-tablet")
    page.set_viewport_size({"width": 1280, "height": 900})

    page.get_by_role("button", name="Delete cohort").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text('Delete the cohort "derm for the page"?')
    shots(page, "confirm")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert setup.client.get(f"/v1/cohorts/{cohort['id']}").json()["status"] == "ready"

    page.get_by_role("button", name="Delete cohort").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status").filter(has_text="was deleted")).to_be_visible()
    expect(facts).to_contain_text("deleted")
    expect(page.get_by_role("button", name="Delete cohort")).to_have_count(0)
    assert setup.client.get(f"/v1/cohorts/{cohort['id']}").status_code == 404  # deleted: out of the API's views
    shots(page, "deleted")
    assert axe_scan(page) == []
    page.reload()
    expect(page.get_by_role("alert")).to_contain_text("not found")
    page.get_by_role("link", name="Back to the cohorts").click()
    expect(page.get_by_role("heading", name="Cohorts of your organisation")).to_be_visible()
    expect(page.get_by_role("link", name="derm for the page")).to_have_count(0)


def test_a_multiclass_cohort_is_shown_class_by_class(
    page: Page, console_keys: ConsoleKeys, setup: Setup, shots: Shots, tmp_path: Path
) -> None:
    setup.client.headers["Authorization"] = f"Bearer {console_keys.make('auditor', org=ORG)}"
    archive = write_derm_archive(tmp_path / "nine.zip", n=240, seed=4, image_size=32, task="multiclass")
    config = {"name": "derm nine classes", **cohort_config(9), "image_size": 32, "other_class": "other"}
    with archive.open("rb") as fh:
        response = setup.client.post(
            "/v1/cohorts", files={"archive": ("nine.zip", fh)}, data={"config": json.dumps(config)}
        )
    assert response.status_code == 202, response.text
    _auditor(page, console_keys)
    page.goto(f"/console/cohorts/{response.json()['id']}")  # while it ingests: the page follows it
    expect(page.locator("dl.facts")).to_contain_text("ready", timeout=60_000)
    cohort = setup.wait(f"/v1/cohorts/{response.json()['id']}", "ingesting", "ready")
    classes = cohort["classes"]
    expect(page.locator("dl.facts")).to_contain_text(", ".join(classes))
    if len(classes) > 8:  # one class at a time against the rest, and every class in a table
        page.get_by_label("Class", exact=True).select_option(classes[1])
        expect(
            _figure(page, f"skin_tone: {classes[1]} against the other classes × group counts, all splits")
        ).to_be_visible()
        page.get_by_text(f"All {len(classes)} classes").first.click()
    else:
        chart = _figure(page, "skin_tone: class × group counts, all splits")
        chart.get_by_text("Show the numbers").click()
        expect(chart.get_by_role("columnheader", name=classes[0])).to_be_visible()
    expect(page.get_by_role("table", name="Items per class and split")).to_be_visible()
    shots(page, "multiclass")
    assert axe_scan(page) == []
    page.set_viewport_size({"width": 800, "height": 1000})
    shots(page, "multiclass-tablet")
    assert axe_scan(page) == []


def test_a_multilabel_cohort_is_shown_finding_by_finding(
    page: Page, console_keys: ConsoleKeys, setup: Setup, shots: Shots, tmp_path: Path
) -> None:
    setup.client.headers["Authorization"] = f"Bearer {console_keys.make('auditor', org=ORG)}"
    archive = write_findings_archive(tmp_path / "cxr.zip", n=80, seed=6, findings=3, image_size=32)
    config = {"name": "chest findings", **findings_config(3), "image_size": 32}
    with archive.open("rb") as fh:
        response = setup.client.post(
            "/v1/cohorts", files={"archive": ("cxr.zip", fh)}, data={"config": json.dumps(config)}
        )
    assert response.status_code == 202, response.text
    cohort = setup.wait(f"/v1/cohorts/{response.json()['id']}", "ingesting", "ready")
    findings, attribute = cohort["classes"], cohort["attributes"][0]
    _auditor(page, console_keys)
    page.goto(f"/console/cohorts/{cohort['id']}")
    expect(page.locator("dl.facts")).to_contain_text("multilabel")
    page.get_by_label("Finding", exact=True).select_option(findings[-1])
    chart = _figure(page, f"{attribute}: finding {findings[-1]} × group counts, all splits")
    chart.get_by_text("Show the numbers").click()
    expect(chart.get_by_role("columnheader", name=f"{findings[-1]} positive")).to_be_visible()
    expect(page.get_by_role("table", name="Findings per split (positive / negative / unknown)")).to_be_visible()
    shots(page, "multilabel")
    assert axe_scan(page) == []


def test_the_list_pages_as_the_api_pages(
    page: Page, console_keys: ConsoleKeys, setup: Setup, shots: Shots, tmp_path: Path
) -> None:
    key = console_keys.make("admin", org="Paging Org")
    setup.client.headers["Authorization"] = f"Bearer {key}"
    for name in ("older cohort", "newer cohort"):
        folder = tmp_path / name.replace(" ", "-")
        folder.mkdir()
        setup.cohort(folder, n=40, name=name)
    sign_in(page, key)
    page.goto("/console/?limit=1")
    cohorts = page.get_by_role("table", name="Cohorts")
    expect(cohorts.get_by_role("link", name="newer cohort")).to_be_visible()
    expect(page.get_by_role("button", name="Previous page")).to_have_count(0)
    page.get_by_role("button", name="Next page").click()
    expect(cohorts.get_by_role("link", name="older cohort")).to_be_visible()
    expect(cohorts.get_by_role("link", name="newer cohort")).to_have_count(0)
    expect(page.get_by_text("Page 2")).to_be_visible()
    expect(page.get_by_role("button", name="Next page")).to_have_count(0)
    shots(page, "page-2")
    page.get_by_role("button", name="Previous page").click()
    expect(cohorts.get_by_role("link", name="newer cohort")).to_be_visible()


def test_a_non_zip_upload_shows_the_apis_problem_at_the_file_field(
    page: Page, console_keys: ConsoleKeys, shots: Shots
) -> None:
    _auditor(page, console_keys)
    _fill(page, {"name": "notes.zip", "mimeType": "application/zip", "buffer": b"these are not images"}, "not a zip")
    page.get_by_role("button", name="Upload cohort").click()
    archive = page.get_by_label("Archive (.zip or .tar.gz)")
    expect(archive).to_have_attribute("aria-invalid", "true")
    error = page.locator(".field").filter(has=archive).locator(".field-error")
    expect(error).to_contain_text("not a .zip or .tar.gz archive")
    expect(page.get_by_role("alert")).to_contain_text("not a .zip or .tar.gz archive")
    shots(page, "not-a-zip")
    assert axe_scan(page) == []


def test_an_invalid_config_shows_the_apis_problem_at_the_field(
    page: Page, console_keys: ConsoleKeys, shots: Shots, tmp_path: Path
) -> None:
    archive = write_derm_archive(tmp_path / "derm.zip", n=40, seed=2, image_size=32)
    _auditor(page, console_keys)
    _fill(page, archive, "a task its preset lacks")
    page.get_by_label("Task").select_option("multilabel")  # the config as a whole: in the form's alert
    page.get_by_role("button", name="Upload cohort").click()
    expect(page.get_by_role("alert")).to_contain_text("the fitzpatrick17k preset has no multilabel task")
    expect(page.locator("[aria-invalid=true]")).to_have_count(0)

    page.get_by_label("Task").select_option("binary")
    page.get_by_label("Image size (pixels)").fill("3")
    page.get_by_role("button", name="Upload cohort").click()
    size = page.get_by_label("Image size (pixels)")
    expect(size).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field").filter(has=size).locator(".field-error")).to_contain_text(
        "greater than or equal to 16"
    )
    shots(page, "image-size")

    page.get_by_label("Image size (pixels)").fill("32")
    page.get_by_text("Advanced: config JSON").click()
    box = page.get_by_label("Config JSON")
    box.fill('{"split": {"mode": "column"')
    page.get_by_role("button", name="Upload cohort").click()
    expect(box).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field").filter(has=box).locator(".field-error")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("config is not valid JSON")
    expect(size).not_to_have_attribute("aria-invalid", "true")

    box.fill('{"image_size": 2000, "colour": "blue"}')  # the API's answer, each problem at the box that set it
    page.get_by_role("button", name="Upload cohort").click()
    error = page.locator(".field").filter(has=box).locator(".field-error")
    expect(error).to_contain_text("less than or equal to 1024")
    expect(error).to_contain_text("colour")
    expect(page.get_by_role("alert")).to_contain_text("invalid cohort config")
    expect(size).not_to_have_attribute("aria-invalid", "true")
    shots(page, "config-json")
    assert axe_scan(page) == []


def test_a_predictor_opening_the_console_is_refused(page: Page, console_keys: ConsoleKeys, shots: Shots) -> None:
    sign_in(page, console_keys.make("predictor", org=ORG))
    expect(page.get_by_role("alert")).to_have_text("A predictor key cannot open this page.")
    expect(page.get_by_role("heading", name="Upload a cohort")).to_have_count(0)
    expect(page.get_by_role("table", name="Cohorts")).to_have_count(0)
    page.goto("/console/cohorts/coh_anything")
    expect(page.get_by_role("alert")).to_have_text("A predictor key cannot open this page.")
    shots(page, "predictor")
