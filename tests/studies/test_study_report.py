"""The study's HTML report over HTTP, for a finished 2-fold × 2-config study with final models (real
job processes; SQLite): a forest plot with one row per paired difference, the
verdicts, every config, and numbers equal to the study's JSON result and its pooled evaluations;
409 while the study runs or once cancelled, 404 for another organisation; the pooled evaluation's
own report and model card link back to the study."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from api_document import assert_documented
from study_helpers import drive, ready_cohort, study_body

from app.fairness.report_html import fmt, p_value

HOSTILE = "tiny </title><script>alert(1)</script>"


class Page(HTMLParser):
    """Every table of a page as rows of cell texts, every link, every tag."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.links: list[str] = []
        self.tags: set[str] = set()
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "a":
            self.links.append(dict(attrs)["href"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def section(html: str, heading: str) -> str:
    """The page from ``heading`` up to the next heading of any level."""
    start = html.index(heading) + len(heading)
    ends = [i for i in (html.find("<h2>", start), html.find("<h3>", start)) if i >= 0]
    return html[start : min(ends, default=len(html))]


def valued(entry: dict[str, Any] | None) -> str:
    """How the report writes a value with its interval (its across-fold spread, if any, follows)."""
    if entry is None or entry.get("value") is None:
        return "—"
    star = "*" if entry.get("status") == "insufficient" else ""
    interval = f" [{fmt(entry['ci_low'])}, {fmt(entry['ci_high'])}]" if entry.get("ci_low") is not None else ""
    return f"{fmt(entry['value'])}{star}{interval}"


def spread(entry: dict[str, Any]) -> str:
    folds = entry.get("folds") or {}
    if not folds.get("n"):
        return ""
    sd = f" ± {fmt(folds['sd'])}" if folds["sd"] is not None else ""
    return f"{fmt(folds['mean'])}{sd} across {folds['n']} fold"


# SQLite only: the page is rendered from the study's stored result, which test_studies_api.py
# checks on both databases; six training jobs per database were a tenth of CI's time.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_report_of_a_finished_study_shows_its_result(client, keys, run_jobs):
    headers = keys.headers()
    cohort_id = ready_cohort(client, headers, run_jobs)
    body = study_body(cohort_id, final_models=True, name=HOSTILE)
    started = client.post("/v1/studies", headers=headers, json=body).json()
    url = f"/v1/studies/{started['id']}/report"
    running = client.get(url, headers=headers)
    assert running.status_code == 409 and "it is running" in running.json()["detail"]
    elsewhere = client.get(url, headers=keys.headers(org="Elsewhere"))
    assert elsewhere.status_code == 404, "another organisation's study"
    for answer in (running, elsewhere):
        assert_documented(client.app, "GET", "/v1/studies/{study_id}/report", answer)
    assert client.get("/v1/studies/std_nope/report", headers=headers).status_code == 404
    dropped = client.post("/v1/studies", headers=headers, json=study_body(cohort_id, name="dropped")).json()
    client.post(f"/v1/studies/{dropped['id']}/cancel", headers=headers)
    cancelled = client.get(f"/v1/studies/{dropped['id']}/report", headers=headers)
    assert cancelled.status_code == 409 and "it is cancelled" in cancelled.json()["detail"]

    study = drive(client, headers, run_jobs, started["id"])
    assert study["status"] == "succeeded", study["error"]
    response = client.get(url, headers=headers)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert_documented(client.app, "GET", "/v1/studies/{study_id}/report", response)
    html = response.text
    page = Page(html)
    assert "script" not in page.tags and "img" not in page.tags and "link" not in page.tags
    assert html.count("Study: tiny &lt;/title&gt;&lt;script&gt;") == 2, "the name, escaped in <title> and <h1>"
    assert "src=" not in html and "url(" not in html, "self-contained: nothing is fetched"
    assert all(link.startswith("/v1/") for link in page.links), "links only to the service's own pages"
    result = study["result"]

    setup = {row[0]: row[1] for row in page.tables[0]}
    assert setup["cohort"] == cohort_id and setup["folds (K)"].startswith("2:") and setup["seeds"].startswith("1:")
    assert setup["reference"] == "config 0 (erm)"
    configs = {row[0]: row for row in page.tables[1][1:]}
    assert list(configs) == ["config 0 (erm) (reference)", "config 1 (fair_multi_exit_pairwise_eo)"]
    for summary, row in zip(result["configs"], configs.values(), strict=True):
        assert summary["method"] in row and str(summary["n_predictions"]) in row
        assert ", ".join(summary["pooled"]) in row

    (comparison,) = result["comparison"]["comparisons"]
    verdicts = next(t for t in page.tables if t[0][0] == "config" and "sex" in t[0] and "overall" in t[0])
    by_attribute = {v["attribute"]: v["verdict"] for v in comparison["verdicts"]}
    assert verdicts[0] == ["config", *by_attribute]
    assert verdicts[1] == [comparison["model"], *by_attribute.values()]

    forest = section(html, f"<h3>{comparison['model']} − {comparison['reference']}</h3>")
    compute = {"attribute": "overall", "metric": "mean_compute", "verdict": None, **comparison["compute"]}
    differences = [*comparison["differences"], compute]
    assert forest.count('<g class="forest-row">') == len(differences), "one forest row per paired difference"
    assert "mean_compute" in forest and "sex · pfd" in forest
    (table,) = Page(forest).tables
    assert len(table) == 1 + len(differences)
    for d, row in zip(differences, table[1:], strict=True):
        p = d.get("p_holm") if d.get("p_holm") is not None else d.get("p_value")
        assert row[:5] == [
            d["attribute"],
            d["metric"],
            fmt(d["value_reference"]),
            fmt(d["value_model"]),
            valued({"value": d["difference"], "ci_low": d["ci_low"], "ci_high": d["ci_high"]}),
        ], (d, row)
        assert row[5].startswith(p_value(p)) and row[6] == (d["verdict"] or "—"), (d, row)

    thresholds = next(t for t in page.tables if t[0] == ["config", "fold", "threshold", "held-out evaluation"])
    for summary in result["configs"]:
        for fold, threshold in summary["thresholds"].items():
            child = next(
                c
                for c in study["children"]
                if c["config"] == summary["index"] and c["fold"] is not None and f"s{c['seed']}/f{c['fold']}" == fold
            )
            assert [summary["label"], fold, fmt(threshold), child["evaluation_id"]] in thresholds

    reports = {}
    policy = {"attributes": ["sex"], "checks": [{"check": "limit", "metric": "auc", "min": 0.0}]}
    assert client.put("/v1/policies", headers=keys.headers("admin"), json=policy).status_code == 200
    for summary in result["configs"]:
        evaluation_id = summary["evaluation_id"]
        for link in ("report", "model-card", "predictions.csv"):
            assert f"/v1/evaluations/{evaluation_id}/{link}" in page.links
        assert f"/v1/models/{summary['final_model_version_id']}" in page.links, "the final model is linked"
        gate = client.get(f"/v1/models/{summary['final_model_version_id']}/gate?alias=production", headers=headers)
        assert gate.json()["evaluation_id"] == summary["evaluation_id"], "the gate judges the study's evidence"
        reports[summary["label"]] = client.get(f"/v1/evaluations/{evaluation_id}", headers=headers).json()["report"]
        assert [summary["label"], "pooled (median)", fmt(reports[summary["label"]]["config"]["threshold"]), ""] in (
            thresholds
        )

    sex = Page(section(html, "<h3>sex</h3>")).tables[0]
    assert sex[0] == ["group", "config", "n", "n+", "pf", "tpr", "fpr"]
    shown = {(row[0], row[1]): row for row in sex[1:]}
    expected = 0
    for label, report in reports.items():
        policy = next(e for e in report["evaluations"] if e["exit"] == "policy")
        grouping = next(g for g in policy["groupings"] if g["attribute"] == "sex")
        expected += len(grouping["groups"])
        for group in grouping["groups"]:
            row = shown[(group["group"], label)]
            assert row[2:4] == [str(group["n"]), str(group["n_pos"])]
            for metric, text in zip(("pf", "tpr", "fpr"), row[4:], strict=True):
                entry = group["metrics"][metric]
                assert text.startswith(valued(entry)) and spread(entry) in text, (label, group["group"], metric)
    assert len(shown) == len(sex) - 1 == expected, "every group under every config, once"

    overall = next(t for t in page.tables if t[0] == ["config", "auc", "tpr", "fpr"])
    for (label, report), row in zip(reports.items(), overall[1:], strict=True):
        auc = report["summary"]["overall"]["auc"]
        assert row[0] == label and row[1].startswith(valued(auc)) and spread(auc) in row[1]
        assert re.search(r"± [\d.]+ across 2 folds", row[1]), "the across-fold spread beside the pooled value"

    finals = [c for c in study["children"] if c["fold"] is None]
    assert len(finals) == 2 and all(f"/v1/evaluations/{c['evaluation_id']}/report" in page.links for c in finals)
    final_card = client.get(f"/v1/evaluations/{finals[0]['evaluation_id']}/model-card", headers=headers).json()
    assert final_card["fairaudit"]["study_id"] == study["id"], "a final model's own evaluation names its study"
    for summary in result["configs"]:
        evaluation_id = summary["evaluation_id"]
        back = client.get(f"/v1/evaluations/{evaluation_id}/report", headers=headers).text
        assert f'href="{url}"' in back, "the pooled evaluation's report links its study"
        answer = client.get(f"/v1/evaluations/{evaluation_id}/model-card", headers=headers)
        assert_documented(client.app, "GET", "/v1/evaluations/{evaluation_id}/model-card", answer)
        card = answer.json()
        assert card["fairaudit"]["study_id"] == study["id"]
        pooled_threshold = card["fairaudit"]["thresholds"]
        assert pooled_threshold["operating"] == reports[summary["label"]]["config"]["threshold"]
        assert pooled_threshold["rule"].startswith("each sample at its own fold model's threshold")
        assert pooled_threshold["rule_record"] is None, "the fold models' decisions, not the final model's rule"
        assert "each sample at its own fold model&#39;s threshold" in back
        assert {"reference": url} in card["model_details"]["references"]
