"""The HTML page: self-contained, escaped, with the verdict first and the charts present."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pytest
from synth import simulate

from app.fairness.engine import PredictionSet, build_report, compare_models
from app.fairness.report_html import render_html

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
