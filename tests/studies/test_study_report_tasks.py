"""A multi-class or multi-label study's page: the pooled sections in the task's own terms (the
class-averaged gaps; each finding on its own), the fold models' class or finding thresholds."""

from __future__ import annotations

from html.parser import HTMLParser

from study_pages import finished_study, two_configs

from app.fairness.engine import build_report
from app.studies.report_html import render_study_html


class Headings(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.h2: list[str] = []
        self._in = False
        self.tags: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "h2":
            self._in = True
            self.h2.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in = self._in and tag != "h2"

    def handle_data(self, data: str) -> None:
        if self._in:
            self.h2[-1] += data


def test_multiclass_study_page_shows_class_gaps_and_class_thresholds() -> None:
    predictions = two_configs("multiclass")
    reports = {i: build_report(p, attributes=["skin_type"], n_boot=10) for i, p in predictions.items()}
    thresholds = {0: {"s0/f0": None, "s0/f1": None}, 1: {"s0/f0": [0.5, 0.25, 0.25], "s0/f1": [0.4, 0.3, 0.3]}}
    html = render_study_html(finished_study(predictions, reports, thresholds, "skin_type"), reports)
    headings = Headings(html)
    assert "Groups: accuracy, balanced accuracy and macro F1 per config" in headings.h2
    for gap in ("eopp0", "eopp1", "eodd", "macro_f1_diff"):
        assert f"<th>{gap}</th>" in html
    eopp1 = next(g for g in reports[1]["evaluations"][-1]["groupings"] if g["attribute"] == "skin_type")["gaps"][
        "eopp1"
    ]
    assert f'{eopp1["value"]:.3f} <span class="ci">[{eopp1["ci_low"]:.3f}, {eopp1["ci_high"]:.3f}]' in html
    assert "<td>0.500, 0.250, 0.250</td>" in html and "TPR and FPR by group" not in html
    accuracy = reports[0]["summary"]["overall"]["accuracy"]["value"]
    assert f">{accuracy:.3f} <span" in html


def test_multilabel_study_page_shows_each_finding_pooled() -> None:
    predictions = two_configs("multilabel", k=2)
    reports = {i: build_report(p, attributes=["skin_type"], n_boot=10) for i, p in predictions.items()}
    thresholds = {i: {"s0/f0": [0.5, 0.5], "s0/f1": [0.45, 0.55]} for i in predictions}
    html = render_study_html(finished_study(predictions, reports, thresholds, "skin_type"), reports)
    headings = Headings(html)
    for finding in ("multi_0", "multi_1"):
        assert f"Pooled headline metrics: {finding}" in headings.h2
        assert f"Groups: PF, TPR and FPR per config: {finding}" in headings.h2
        auc = reports[1]["per_finding"][finding]["summary"]["overall"]["auc"]["value"]
        assert f">{auc:.3f} <span" in html
    assert "<td>0.450, 0.550</td>" in html
    assert html.count("TPR and FPR by group") == 2, "each finding's skin-type bars"
    assert "script" not in headings.tags
