"""The multi-class and multi-label pages: the verdict first, the paper-style table and the class gaps
with both conventions, every class one click away however many there are, confusion matrices whose
counts are the report's, hostile class names kept as text, each finding drawn as a binary report."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest
from task_reports import multiclass_report, multilabel_report

from app.fairness.class_views import TOP_CLASSES
from app.fairness.report_html import render_html

HOSTILE = '<script>alert(1)</script>"><svg onload=alert(2)>'


class Page(HTMLParser):
    """Tags, attributes, and every table as (class, caption, rows of cell texts)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.tables: list[dict[str, Any]] = []
        self._open: list[dict[str, Any]] = []
        self._text: list[str] | None = None
        self._caption = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)
        if tag == "table":
            self._open.append({"class": dict(attrs).get("class"), "caption": "", "rows": []})
        elif tag == "tr" and self._open:
            self._open[-1]["rows"].append([])
        elif tag in ("td", "th"):
            self._text = []
        elif tag == "caption":
            self._caption = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.tables.append(self._open.pop())
        elif tag in ("td", "th") and self._text is not None and self._open:
            self._open[-1]["rows"][-1].append("".join(self._text).strip())
            self._text = None
        elif tag == "caption":
            self._caption = False

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)
        if self._caption and self._open:
            self._open[-1]["caption"] += data


def policy_groupings(report: dict) -> list[dict]:
    return next(e for e in report["evaluations"] if e["exit"] == "policy")["groupings"]


@pytest.fixture(scope="module")
def three() -> tuple[dict, str]:
    report = multiclass_report(3, n=1500, seed=1)
    return report, render_html(report, title="Three classes", metadata={"model version": "mc-3"})


@pytest.fixture(scope="module")
def many() -> tuple[dict, str]:
    report = multiclass_report(114, n=2500, seed=2, hostile=HOSTILE, n_boot=0)  # no bootstrap: fast
    return report, render_html(report, title="Fitzpatrick 17k, 114 conditions")


def test_three_class_page_puts_the_verdict_first_and_shows_the_paper_table(three: tuple[dict, str]) -> None:
    report, html = three
    page = Page(html)
    assert html.index('class="verdict"') < html.index("<h2>Groups") < html.index("<h2>Each class")
    assert report["summary"]["verdict"] in html
    overall = page.tables[2]  # facts, findings, overall
    assert [row[0] for row in overall["rows"][1:]] == [
        "accuracy",
        "balanced accuracy",
        "macro precision",
        "macro recall",
        "macro f1",
    ]
    accuracy = report["summary"]["overall"]["accuracy"]
    assert overall["rows"][1][1].startswith(f"{accuracy['value']:.3f} [{accuracy['ci_low']:.3f}, ")
    skin = policy_groupings(report)[1]
    paper = next(t for t in page.tables if [r[0] for r in t["rows"][1:]] == ["I-II", "III-IV", "VI", "Avg", "Diff"])
    diff = skin["gaps"]["macro_f1_diff"]
    assert paper["rows"][-1][-1] == f"{diff['value']:.3f} [{diff['ci_low']:.3f}, {diff['ci_high']:.3f}]"
    gaps = next(t for t in page.tables if t["rows"][0][:4] == ["gap", "FairAudit [CI]", "status", "paper convention"])
    assert [r[0] for r in gaps["rows"][1:]] == ["eopp0", "eopp1", "eodd"]
    eopp1 = skin["gaps"]["eopp1"]
    assert gaps["rows"][2][3] == f"{eopp1['paper_value']:.3f}"
    assert gaps["rows"][2][4] == str(len(eopp1["classes_used"]))
    assert "the two differ exactly when a class is left out" in html
    assert "<details" not in html, "three classes need no folding"
    for name in report["classes"]:
        assert f"<h3>{name} " in html


def test_confusion_matrices_show_the_reports_counts_per_group(three: tuple[dict, str]) -> None:
    report, html = three
    matrices = [t for t in Page(html).tables if t["class"] == "confusion"]
    groups = [(e["attribute"], g) for e in policy_groupings(report) for g in e["groups"]]
    assert len(matrices) == len(groups) == 6  # overall, three skin types, two sexes
    for table, (_, group) in zip(matrices, groups, strict=True):
        assert table["caption"] == f"{group['group']} (n = {group['n']})"
        header, *rows = table["rows"]
        assert header == ["true \\ predicted", *report["classes"], "n"]
        counts = [[int(x) for x in row[1:-1]] for row in rows]
        assert counts == group["confusion"]
        assert [int(row[-1]) for row in rows] == group["class_counts"]
    assert 'style="background:#' in html and "of true class 000)" in html  # shade and its share in the tooltip


def test_114_classes_show_the_top_by_support_and_fold_the_rest(many: tuple[dict, str]) -> None:
    report, html = many
    support = report["population"]["class_counts"]
    ranked = sorted(report["classes"], key=lambda c: -support[c])
    top, rest = ranked[:TOP_CLASSES], ranked[TOP_CLASSES:]
    page = Page(html)
    classes = next(t for t in page.tables if t["rows"][0] == ["class", "samples"])
    assert [row[0] for row in classes["rows"][1:]] == top
    assert [int(row[1]) for row in classes["rows"][1:]] == sorted((support[c] for c in top), reverse=True)
    assert f"{len(rest)} more classes</summary>" in html and f"{len(rest)} more classes, by support</summary>" in html
    per_class = html[html.index("<h2>Each class") : html.index("<h2>Confusion")]
    folded = per_class.index("<details>")
    for name in top[1:]:
        assert per_class.index(f"<h3>{name} ") < folded
    for name in rest:
        assert per_class.index(f"<h3>{name} ") > folded  # one click away, not dropped

    matrices = [t for t in page.tables if t["class"] == "confusion"]
    header, *rows = matrices[0]["rows"]  # the overall group
    labels = [HOSTILE[:17] + "…" if name == HOSTILE else name for name in top]
    assert header == ["true \\ predicted", *labels, "other", "n"] and len(rows) == TOP_CLASSES + 1
    overall = policy_groupings(report)[0]["groups"][0]
    assert [int(r[-1]) for r in rows[:-1]] == [support[c] for c in top]
    assert int(rows[-1][-1]) == sum(support[c] for c in rest), "every sample of a folded class is in 'other'"
    assert sum(int(x) for r in rows for x in r[1:-1]) == overall["n"] == np.sum(overall["confusion"])
    assert f'the other {len(rest)} are pooled into one "other" row and column' in html
    assert len(html.encode()) < 600_000, len(html.encode())


def test_hostile_class_names_stay_text(many: tuple[dict, str]) -> None:
    _, html = many
    page = Page(html)
    assert HOSTILE not in html and "script" not in page.tags and "onload" not in {name for name, _ in page.attrs}
    assert page.tags.count("svg") == html.count('<svg xmlns="http://www.w3.org/2000/svg"'), "no SVG injected"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&gt;&lt;svg onload=alert(2)&gt;" in html
    assert not any(name in {"src", "href"} for name, _ in page.attrs) and "url(" not in html


def test_multilabel_page_summarises_every_finding_then_draws_each_as_a_binary_report() -> None:
    findings = ["Effusion", HOSTILE, "Cardiomegaly"]
    report = multilabel_report(findings)
    html = render_html(report, title="CheXpert findings")
    page = Page(html)
    assert HOSTILE not in html and "script" not in page.tags and "onload" not in {name for name, _ in page.attrs}
    summary = next(t for t in page.tables if t["rows"][0][:5] == ["finding", "n", "n+", "n−", "unknown"])
    assert [row[0] for row in summary["rows"][1:]] == findings
    for row, name in zip(summary["rows"][1:], findings, strict=True):
        counts = report["population"]["per_finding"][name]
        assert row[1:5] == [str(counts["n"]), str(counts["n_pos"]), str(counts["n_neg"]), str(counts["n_unknown"])]
        eopp1 = next(s for s in report["summary"] if s["finding"] == name)["gaps"]["eopp1"]
        assert row[6] == f"{eopp1['value']:.3f} [{eopp1['ci_low']:.3f}, {eopp1['ci_high']:.3f}]{eopp1['attribute']}"
    sections = html.split("<h2>Finding: ")[1:]
    assert len(sections) == 3
    for section, name in zip(sections, findings, strict=True):
        sub = report["per_finding"][name]
        assert sub["summary"]["verdict"].replace("&", "&amp;") in section
        for title in ("<h3>Summary</h3>", "<h3>Operating point</h3>", "<h3>Groups (served policy)</h3>"):
            assert title in section
        for chart in ("ROC by group", "TPR and FPR by group", "Calibration by group", "Exit taken, by group"):
            assert chart in section
    assert html.index("<h2>Summary</h2>") < html.index("<h2>Finding: ")
