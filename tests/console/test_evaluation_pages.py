"""Evaluations: the list with its selection, one evaluation's report (verdict first, groups, gaps with
intervals, curves, the sandboxed HTML report, downloads) and the paired comparison of two or more.

The evaluations are audits of predictions made elsewhere (``POST /v1/audits``: a report in a second,
no training), with sample ids so that two audits of the same samples can be compared."""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from audit_helpers import predictions_csv
from class_audit_helpers import MULTICLASS_CONFIG, MULTILABEL_CONFIG, multiclass_csv, multilabel_csv
from console_support import ConsoleKeys, Setup, Shots, axe_scan
from playwright.sync_api import Page, expect


def audit(setup: Setup, name: str, csv_text: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    config = {"name": name, "sensitive_attributes": ["sex", "site"], "threshold": 0.5, **(config or {})}
    response = setup.client.post(
        "/v1/audits", files={"predictions": ("p.csv", csv_text.encode())}, data={"config": json.dumps(config)}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def open_page(page: Page, key: str, path: str) -> None:
    """Open a page of the console signed out: sign in on the page it sends to, and come back to ``path``."""
    page.goto(path)
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{path}")


def js_fixed(value: float, digits: int = 3) -> str:
    """``Number.prototype.toFixed``: the exact binary value rounded half up (Python's format rounds half even)."""
    return str(Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def interval_text(entry: dict[str, Any]) -> str:
    return f"{js_fixed(entry['value'])} [{js_fixed(entry['ci_low'])}, {js_fixed(entry['ci_high'])}]"


def policy_grouping(report: dict[str, Any], attribute: str) -> dict[str, Any]:
    policy = next(e for e in report["evaluations"] if e["exit"] == "policy")
    return dict(next(g for g in policy["groupings"] if g["attribute"] == attribute))


def test_the_report_shows_the_verdict_first_and_a_gaps_interval(
    page: Page, setup: Setup, console_keys: ConsoleKeys, shots: Shots
) -> None:
    evaluation = audit(setup, "vendor triage model", predictions_csv(400, seed=2, bias=0.35))
    report = evaluation["report"]
    open_page(page, console_keys.make("auditor"), f"/console/evaluations/{evaluation['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Evaluation: vendor triage model")
    first_section = page.locator("section").first
    expect(first_section.get_by_role("heading", level=2)).to_have_text("Verdict")
    expect(first_section.locator(".verdict")).to_contain_text("Significant gap found")
    expect(first_section.locator(".verdict")).to_contain_text(report["summary"]["verdict"])
    pfd = policy_grouping(report, "sex")["gaps"]["pfd"]
    gaps = page.get_by_role("table", name="Gaps across sex", exact=True)
    expect(gaps.get_by_role("row").filter(has_text="pfd").first).to_contain_text(interval_text(pfd))
    female = next(g for g in policy_grouping(report, "sex")["groups"] if g["group"] == "female")
    groups = page.get_by_role("table", name="Groups of sex", exact=True)
    expect(groups.get_by_role("row").filter(has_text="female")).to_contain_text(interval_text(female["metrics"]["tpr"]))
    expect(page.get_by_role("figure", name=re.compile(r"^Gaps across sex, 95% intervals"))).to_be_visible()
    expect(page.get_by_role("figure", name=re.compile(r"^ROC curves by sex:"))).to_be_visible()
    assert "null" not in page.locator("main").inner_text().split()
    shots(page, "report")
    assert axe_scan(page) == []

    frame = page.frame_locator("iframe[title^='Complete HTML report']")
    expect(frame.get_by_role("heading", level=1)).to_have_text("Fairness audit: vendor triage model")
    # the report's own stylesheet applies inside the sandbox, under the console's CSP
    background = frame.locator("p.verdict").first.evaluate("node => getComputedStyle(node).backgroundColor")
    assert background == "rgb(255, 248, 225)"
    page.get_by_role("heading", name="Full report").scroll_into_view_if_needed()
    shots(page, "full-report")


def test_the_contents_work_from_the_keyboard_and_the_downloads_arrive(
    page: Page, setup: Setup, console_keys: ConsoleKeys, shots: Shots, tmp_path: Path
) -> None:
    evaluation = audit(setup, "download me", predictions_csv(200, seed=4))
    open_page(page, console_keys.make("auditor"), f"/console/evaluations/{evaluation['id']}")
    contents = page.get_by_role("navigation", name="Report sections")
    expect(contents.get_by_role("link")).to_have_text(
        ["Verdict", "Groups", "Gaps", "Curves", "Full report", "Downloads"]
    )
    contents.get_by_role("link", name="Gaps").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Gaps", exact=True)).to_be_focused()
    contents.get_by_role("link", name="Downloads").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Downloads", exact=True)).to_be_focused()
    shots(page, "downloads")

    expected = {
        "the evaluation and its report (JSON)": f"{evaluation['id']}.json",
        "the HTML report": f"{evaluation['id']}-report.html",
        "the model card (JSON)": f"{evaluation['id']}-model-card.json",
        "the per-sample predictions (CSV)": f"{evaluation['id']}-predictions.csv",
    }
    saved: dict[str, Path] = {}
    for label, filename in expected.items():
        with page.expect_download() as arrived:
            page.get_by_role("button", name=f"Download {label}", exact=True).click()
        assert arrived.value.suggested_filename == filename
        saved[label] = tmp_path / filename
        arrived.value.save_as(saved[label])
    assert json.loads(saved["the evaluation and its report (JSON)"].read_text())["report"] == evaluation["report"]
    assert saved["the HTML report"].read_text().lstrip().lower().startswith("<!doctype html")
    assert "model_details" in json.loads(saved["the model card (JSON)"].read_text())
    assert saved["the per-sample predictions (CSV)"].read_text().splitlines()[0].startswith("sample_id")
    expect(page.get_by_role("status").filter(has_text="downloaded")).to_be_visible()
    page.goto(f"/console/evaluations/{evaluation['id']}#curves")  # a link to a section lands there
    page.reload()  # (the same page with another fragment: the browser only scrolls)
    expect(page.get_by_role("heading", name="Curves", exact=True)).to_be_focused()


def test_the_list_compares_two_selected_evaluations_with_a_forest_plot(
    page: Page, setup: Setup, console_keys: ConsoleKeys, shots: Shots
) -> None:
    reference = audit(setup, "current model", predictions_csv(300, seed=1, bias=0.35))
    candidate = audit(setup, "fairer model", predictions_csv(300, seed=1, bias=0.0))
    open_page(page, console_keys.make("auditor"), "/console/evaluations")
    listed = page.get_by_role("table", name="Evaluations, newest first")
    expect(listed.get_by_role("link", name="fairer model").first).to_be_visible()
    compare = page.get_by_role("button", name="Compare selected")
    expect(compare).to_be_disabled()
    shots(page, "list")
    assert axe_scan(page) == []
    page.get_by_role("checkbox", name="Select current model").first.check()
    page.get_by_role("checkbox", name="Select fairer model").first.check()
    expect(compare).to_be_enabled()
    compare.click()

    page.wait_for_url("**/console/compare?ids=*")
    differences = page.get_by_role("table", name="Differences: fairer model against current model")
    expect(differences).to_be_visible(timeout=60_000)
    expect(page.get_by_role("figure", name=re.compile(r"^sex: fairer model minus current model"))).to_be_visible()
    expected = setup.client.post(
        "/v1/compare", json={"evaluation_ids": [reference["id"], candidate["id"]], "n_boot": 1000}
    ).json()
    row = next(
        d for d in expected["comparisons"][0]["differences"] if (d["attribute"], d["metric"]) == ("sex", "eopp1")
    )
    text = f"{js_fixed(row['difference'])} [{js_fixed(row['ci_low'])}, {js_fixed(row['ci_high'])}]"
    cells = differences.get_by_role("row").filter(has=page.get_by_role("cell", name="eopp1", exact=True))
    expect(cells.filter(has=page.get_by_role("cell", name="sex", exact=True))).to_contain_text(text)
    verdict = next(v for v in expected["comparisons"][0]["verdicts"] if v["attribute"] == "sex")
    verdicts = page.get_by_role("table", name="Verdicts: fairer model against current model")
    expect(verdicts.get_by_role("row").filter(has=page.get_by_role("cell", name="sex", exact=True))).to_contain_text(
        verdict["verdict"]
    )
    shots(page, "compared")
    assert axe_scan(page) == []


def test_a_comparison_the_api_refuses_shows_its_reason(
    page: Page, setup: Setup, console_keys: ConsoleKeys, shots: Shots
) -> None:
    one = audit(setup, "site one", predictions_csv(120, seed=6))
    other = audit(setup, "site two", predictions_csv(120, seed=7).replace("\ns", "\nt"))
    refused = setup.client.post("/v1/compare", json={"evaluation_ids": [one["id"], other["id"]], "n_boot": 100})
    assert refused.status_code == 422
    page.set_viewport_size({"width": 800, "height": 1000})
    open_page(page, console_keys.make("auditor"), f"/console/compare?ids={one['id']},{other['id']}")
    expect(page.get_by_role("alert")).to_contain_text(refused.json()["detail"])
    expect(page.get_by_role("group", name=re.compile("Evaluations to compare"))).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 800
    shots(page, "refused-800px")
    assert axe_scan(page) == []

    page.get_by_role("checkbox", name=re.compile("^site two")).uncheck()  # one evaluation: refused at the picker
    page.get_by_role("button", name="Compare").click()
    picker = page.get_by_role("group", name=re.compile("Evaluations to compare"))
    expect(picker).to_have_attribute("aria-invalid", "true")
    expect(picker.locator(".field-error")).to_contain_text("at least 2")
    shots(page, "one-evaluation")

    page.goto("/console/evaluations/evl_missing")
    expect(page.get_by_role("alert")).to_contain_text("The evaluation could not be loaded")


def test_a_predictor_cannot_open_the_evaluation_pages(page: Page, console_keys: ConsoleKeys, shots: Shots) -> None:
    open_page(page, console_keys.make("predictor"), "/console/evaluations")
    expect(page.get_by_role("alert")).to_have_text("A predictor key cannot open this page.")
    expect(page.get_by_role("navigation", name="Console").get_by_role("link", name="Evaluations")).to_be_hidden()
    assert page.get_by_role("table").count() == 0
    shots(page, "refused")
    page.goto("/console/compare?ids=a,b")
    expect(page.get_by_role("alert")).to_have_text("A predictor key cannot open this page.")


def test_multiclass_and_multilabel_reports_at_tablet_width(
    page: Page, setup: Setup, console_keys: ConsoleKeys, shots: Shots
) -> None:
    page.set_viewport_size({"width": 800, "height": 1000})
    multiclass = audit(setup, "derm vendor", multiclass_csv(), {**MULTICLASS_CONFIG, "threshold": None})
    multilabel = audit(setup, "cxr vendor", multilabel_csv(), {**MULTILABEL_CONFIG, "threshold": None})
    report = multiclass["report"]
    open_page(page, console_keys.make("auditor"), f"/console/evaluations/{multiclass['id']}")
    expect(page.locator(".verdict")).to_contain_text(report["summary"]["verdict"])
    macro = page.get_by_role("table", name="Macro numbers of the served policy")
    expect(macro.get_by_role("row").filter(has_text="macro f1")).to_contain_text(
        interval_text(report["summary"]["overall"]["macro_f1"])
    )
    expect(page.get_by_role("table", name=re.compile(r"^Classes by support: 3 of 3"))).to_be_visible()
    eopp1 = policy_grouping(report, "skin")["gaps"]["eopp1"]
    gaps = page.get_by_role("table", name="Gaps across skin", exact=True)
    expect(gaps.get_by_role("row").filter(has_text="eopp1").first).to_contain_text(interval_text(eopp1))
    frame = page.frame_locator("iframe[title^='Complete HTML report']")
    expect(frame.get_by_role("heading", level=1)).to_be_visible()
    heat = frame.locator("td[data-fa-style]").first.evaluate("node => getComputedStyle(node).backgroundColor")
    assert heat not in ("rgba(0, 0, 0, 0)", "rgb(255, 255, 255)"), "the heat map keeps its colours"
    assert page.evaluate("document.documentElement.scrollWidth") <= 800
    assert "null" not in page.locator("main").inner_text().split()
    shots(page, "multiclass-800px")
    assert axe_scan(page) == []

    page.goto(f"/console/evaluations/{multilabel['id']}")
    findings = page.get_by_role("table", name="Each finding's verdict")
    expect(findings.get_by_role("row")).to_have_count(3)
    page.get_by_label("Finding shown under Groups, Gaps and Curves").select_option("effusion")
    expect(page.get_by_role("table", name="Gaps across skin (effusion)", exact=True)).to_be_visible()
    shots(page, "multilabel-800px")
    assert axe_scan(page) == []


def test_a_trained_model_compares_with_a_vendor_model_on_its_test_split(
    page: Page, setup: Setup, console_keys: ConsoleKeys, shots: Shots, tmp_path: Path
) -> None:
    """A model trained here against a vendor's scores of the same test samples (an audit of them):
    the comparison pairs them by sample id."""
    trained = setup.train(setup.cohort(tmp_path, n=160)["id"])["result"]
    rows = list(
        csv.DictReader(
            io.StringIO(setup.client.get(f"/v1/evaluations/{trained['evaluation_id']}/predictions.csv").text)
        )
    )
    vendor_csv = "sample_id,y_true,y_score,skin_tone\n" + "".join(
        f"{r['sample_id']},{r['label']},{(float(r['policy_score']) + int(r['label'])) / 2:.6f},{r['skin_tone']}\n"
        for r in rows
    )
    vendor = audit(setup, "vendor model", vendor_csv, {"sensitive_attributes": ["skin_tone"]})
    open_page(page, console_keys.make("auditor"), f"/console/evaluations/{trained['evaluation_id']}")
    facts = page.get_by_label("About this evaluation")
    expect(facts.get_by_role("link", name=trained["model_version_id"])).to_be_visible()
    expect(page.locator(".verdict")).to_be_visible()
    shots(page, "model-report")
    page.goto(f"/console/compare?ids={trained['evaluation_id']},{vendor['id']}")
    pair = page.get_by_role("region", name=re.compile(r"^vendor model against "))
    differences = pair.get_by_role("table", name=re.compile("^Differences: "))
    expect(differences).to_be_visible(timeout=60_000)
    expect(differences.get_by_role("cell", name="skin_tone", exact=True).first).to_be_visible()
    expect(pair.get_by_role("figure", name=re.compile(r"^overall: vendor model minus "))).to_be_visible()
    shots(page, "models-compared")
    assert axe_scan(page) == []
