"""The HTML page: self-contained, escaped, with the verdict first and the charts present."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pytest
from synth import simulate

from app.fairness.engine import PredictionSet, build_report, compare_models
from app.fairness.report_html import environment, forest_chart, forest_limit, render_html

EVIL = '<script>alert("x")</script>'


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)


@pytest.fixture(scope="module")
def page() -> str:
    p = simulate(3000, 12, group_shift=1.0, n_exits=3)
    groups = dict(p.groups)
    groups["site"] = np.where(np.arange(3000) % 2 == 0, EVIL, "clinic & co").astype(object)
    p = PredictionSet(
        y_true=p.y_true,
        exit_scores=p.exit_scores,
        groups=groups,
        threshold=p.threshold,
        exit_index=p.exit_index,
        exit_cost=p.exit_cost,
        sample_ids=p.sample_ids,
    )
    report = build_report(p, attributes=["skin_type", "site"], n_boot=50)
    comparison = compare_models({"m": p, "m2": p}, attributes=["skin_type"], n_boot=20)
    return render_html(report, metadata={"model <version>": "v1 & <b>"}, comparison=comparison)


def test_user_strings_are_escaped(page: str) -> None:
    assert EVIL not in page
    assert "&lt;script&gt;" in page
    assert "clinic &amp; co" in page
    assert "model &lt;version&gt;" in page and "v1 &amp; &lt;b&gt;" in page
    parser = _Collector()
    parser.feed(page)
    assert "script" not in parser.tags


def test_page_is_self_contained(page: str) -> None:
    parser = _Collector()
    parser.feed(page)
    assert not any(name in {"src", "href"} for name, _ in parser.attrs)
    assert "link" not in parser.tags and "img" not in parser.tags
    assert "@import" not in page and "url(" not in page


def test_verdict_comes_first_and_charts_are_inline(page: str) -> None:
    assert page.index('class="verdict"') < page.index("<h2>Groups")
    assert "skin_type" in page[page.index('class="verdict"') :][:400]
    assert page.count("<svg") >= 5  # rate bars, ROC, calibration per attribute, exit bars
    for title in ("ROC by group", "TPR and FPR by group", "Calibration by group", "Exit taken, by group"):
        assert title in page
    assert "Comparison with m" in page
    assert re.search(r"<polyline points=\"[\d., ]+\"", page)


def test_hostile_title_metadata_and_labels_cannot_leave_their_text(page: str) -> None:
    """The page is a Jinja2 template with autoescaping: text that tries to close its element or open an
    attribute stays text, in the tables and in the SVG charts' labels alike."""
    p = simulate(400, 3, group_shift=0.5, n_exits=2)
    breakout = '"><svg onload=alert(1)>'
    labels = np.where(np.arange(400) % 2 == 0, breakout, "</text></svg><script>x</script>").astype(object)
    hostile = PredictionSet(y_true=p.y_true, exit_scores=p.exit_scores, groups={breakout: labels}, threshold=0.5)
    html = render_html(
        build_report(hostile, attributes=[breakout], n_boot=20),
        title="</title><script>alert(1)</script>",
        metadata={breakout: breakout},
    )
    parser = _Collector()
    parser.feed(html)
    assert "script" not in parser.tags and "onload" not in {name for name, _ in parser.attrs}
    charts = parser.tags.count("svg")  # rate bars, ROC and calibration of "overall" and of the attribute
    assert charts == html.count('<svg xmlns="http://www.w3.org/2000/svg"') == 6  # none injected
    assert html.count("&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;") == 2  # <title> and <h1>
    assert html.count("&gt;&lt;svg onload=alert(1)&gt;") >= 4  # metadata, heading, table cell, chart legend


def test_forest_plot_draws_each_difference_on_one_scale_and_names_the_undefined() -> None:
    assert [forest_limit([{"difference": v}]) for v in (0.23, 0.011, 1.0, 0.0)] == [0.25, 0.02, 1.0, 0.1]
    rows = [
        {"label": "sex · pfd", "difference": -0.3, "ci_low": -0.4, "ci_high": -0.2, "verdict": "better"},
        {"label": "sex · eodd", "difference": None, "ci_low": None, "ci_high": None, "verdict": None},
        {
            "label": EVIL,
            "difference": 0.1,
            "ci_low": -0.05,
            "ci_high": 0.23,
            "verdict": "not distinguishable from noise",
        },
    ]
    limit = forest_limit(rows)
    assert limit == 0.5, "the largest interval end, rounded up"
    chart = forest_chart("m − ref", rows, limit)
    zero = next(g["x"] for g in chart["grid"] if g["zero"])
    low_end, high_end = chart["grid"][0]["x"], chart["grid"][-1]["x"]
    better, undefined, noise = chart["rows"]
    assert low_end <= better["low"] < better["x"] < better["high"] < zero < noise["x"] < noise["high"] <= high_end
    assert noise["low"] < zero and undefined["x"] is None and better["color"] != noise["color"]
    svg = environment().get_template("charts.html").module.forest(chart)
    assert svg.count('<g class="forest-row">') == 3 and ">undefined</text>" in svg
    assert EVIL not in svg and "&lt;script&gt;" in svg
