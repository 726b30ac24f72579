"""Render a fairness report (``build_report``'s dict) as one self-contained HTML page.

The page is a Jinja2 template (``templates/report.html`` in the frame ``page.html``, a binary report's
sections from ``binary.html``, cells and tables from ``macros.html``, charts in ``charts.html``; a
study's page uses the same, see ``environment``) with
autoescaping on: every string that comes from users (attribute names, group labels, metadata, the title)
is HTML-escaped by the template engine, not by hand at each place it is written. No scripts, no
external resources: charts are inline SVG, styles are inline CSS, so the page can be archived, e-mailed
or printed as it is. This module computes what the templates draw: number formats and the charts'
coordinates. Undefined template variables raise (``StrictUndefined``) instead of rendering as blanks.

A multi-class report gets ``multiclass.html`` (its layout for many classes: ``class_views``); a
multi-label report ``multilabel.html``, a table of every finding's gaps and then each finding's binary
sections, drawn by the same ``binary.html`` macros as a binary model's page.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any

from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined

from app.fairness.class_views import multiclass_context
from app.fairness.engine.gaps import GAPS
from app.fairness.operating_point import describe_rule, operating_point_rows, threshold_source

PALETTE = ("#1b6ca8", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d6cab", "#2e4057", "#c17c74")
MAX_CURVE_GROUPS = 8  # more curves in one small chart cannot be told apart
MAX_BAR_GROUPS = 24
TABLE_METRICS = ("prevalence", "auc", "pf", "tpr", "fpr", "ppv", "npv", "ece", "brier")
GAP_ORDER = tuple(GAPS)  # the engine's order: PF first, then AUC, rates and Fairlearn's differences
PER_EXIT_GAPS = ["pfd", "eopp1", "eopp0", "eodd"]


def fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def p_value(value: float | None) -> str:
    return "—" if value is None else f"{value:.2g}"


@cache
def environment(*packages: str) -> Environment:
    """The report pages' Jinja2 environment. ``packages`` put their own ``templates`` folders ahead of
    this one's: a page of another domain (a study's) extends the same frame (``page.html``) and uses
    the same macros and charts (``macros.html``, ``charts.html``)."""
    env = Environment(
        loader=ChoiceLoader([PackageLoader(package, "templates") for package in (*packages, "app.fairness")]),
        autoescape=True,  # every template, whatever its name: SVG text is user text too
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(fmt=fmt, p=p_value)
    env.globals.update(
        palette=PALETTE, table_metrics=list(TABLE_METRICS), gap_order=GAP_ORDER, per_exit_gaps=PER_EXIT_GAPS
    )
    return env


# --- chart geometry ------------------------------------------------------------------------------

W, H, PAD = 300, 300, 40


def _xy(x: float, y: float) -> tuple[float, float]:
    return PAD + x * (W - 2 * PAD), H - PAD - y * (H - 2 * PAD)


def _plot(
    title: str, axes: tuple[str, str], lines: list[dict[str, Any]], legend: list[dict[str, Any]], *, dashed: bool
) -> dict[str, Any]:
    """A unit-square plot: corners, ticks, axis labels, the diagonal (``dashed`` or solid), polylines (each
    with its points marked in ``dots``, if any) and a legend."""
    (x0, y0), (x1, y1) = _xy(0, 0), _xy(1, 1)
    ticks = [{"label": f"{t:g}", "x": _xy(t, 0)[0], "y": _xy(0, t)[1]} for t in (0, 0.5, 1)]
    return {
        **{"width": W, "height": H, "title": title, "axes": axes, "ticks": ticks, "dashed": dashed},
        **{"x0": x0, "y0": y0, "x1": x1, "y1": y1, "lines": lines, "legend": legend},
    }


def _legend(labels: list[str], corner: str) -> list[dict[str, Any]]:
    """Colour keys inside the plot, in a corner the curves leave empty ("top-left"/"bottom-right")."""
    x = PAD + 6 if corner == "top-left" else W - PAD - 95
    y = PAD + 4 if corner == "top-left" else H - PAD - 6 - 13 * len(labels)
    return [{"x": x, "y": y + 13 * i, "color": _color(i), "label": label[:22]} for i, label in enumerate(labels)]


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _points(xy: list[tuple[float, float]]) -> str:
    return " ".join(f"{a:.1f},{b:.1f}" for a, b in xy)


def roc_chart(curves: Mapping[str, Mapping | None]) -> dict[str, Any]:
    """ROC curve of each group (diagonal for reference)."""
    lines: list[dict[str, Any]] = [
        {
            "points": _points([_xy(a, b) for a, b in zip(c["fpr"], c["tpr"], strict=True)]),
            "color": _color(i),
            "width": 1.6,
            "dots": [],
        }
        for i, c in enumerate(curves.values())
        if c
    ]
    return _plot("ROC by group", ("FPR", "TPR"), lines, _legend(list(curves), "bottom-right"), dashed=False)


def reliability_chart(points: Mapping[str, list[Mapping]]) -> dict[str, Any]:
    """Observed positive fraction against mean score per bin, one series per group."""
    lines: list[dict[str, Any]] = []
    for i, series in enumerate(points.values()):
        xy = [_xy(p["mean_score"], p["observed"]) for p in series]
        if xy:
            lines.append({"points": _points(xy), "color": _color(i), "width": 1, "dots": xy})
    return _plot(
        "Calibration by group", ("mean score", "observed"), lines, _legend(list(points), "top-left"), dashed=True
    )


def rate_bars_chart(groups: Sequence[Mapping]) -> dict[str, Any]:
    """TPR and FPR per group: bars with Wilson-interval whiskers; undefined rates are left empty."""
    row_h, left, width = 16, 120, 420
    height = 40 + row_h * 2 * len(groups) + 10
    scale = width - left - 20
    rows = []
    for i, g in enumerate(groups):
        y = 28 + 2 * i * row_h
        bars = []
        for j, (metric, color) in enumerate((("tpr", PALETTE[0]), ("fpr", PALETTE[1]))):
            entry, top = g["metrics"][metric], y + j * row_h
            bar: dict[str, Any] = {"metric": metric, "top": top, "color": color, "value": entry["value"]}
            if entry["value"] is not None:
                bar.update(width=entry["value"] * scale, opacity="1" if entry["status"] == "ok" else "0.4", whisker="")
                if entry["ci_low"] is not None and entry["ci_high"] is not None:
                    a, b, mid = left + entry["ci_low"] * scale, left + entry["ci_high"] * scale, top + row_h / 2
                    low, high = f"{mid - 4:.1f}", f"{mid + 4:.1f}"
                    bar["whisker"] = f"M{a:.1f},{mid:.1f}H{b:.1f}M{a:.1f},{low}V{high}M{b:.1f},{low}V{high}"
            bars.append(bar)
        rows.append({"label": str(g["group"])[:20], "y": y, "bars": bars})
    grid = [{"x": left + t * scale, "label": f"{t:g}"} for t in (0, 0.25, 0.5, 0.75, 1)]
    return {"width": width, "height": height, "left": left, "row_h": row_h, "grid": grid, "rows": rows}


def exit_bars_chart(groups: list[Mapping], n_exits: int) -> dict[str, Any]:
    """Stacked bars: the share of each group leaving at each exit."""
    row_h, left, width = 18, 120, 420
    height = 36 + row_h * len(groups) + 20
    scale = width - left - 20
    rows = []
    for i, g in enumerate(groups):
        x, segments = float(left), []
        for e, rate in enumerate(g["exit_rates"]):
            share = rate["value"] or 0.0
            segments.append({"x": x, "width": share * scale, "share": share, "exit": e, "color": _color(e)})
            x += share * scale
        rows.append({"label": str(g["group"])[:20], "y": 26 + i * row_h, "segments": segments})
    return {
        "width": width,
        "height": height,
        "left": left,
        "row_h": row_h,
        "rows": rows,
        "legend": [{"x": left + 50 * e, "y": 30 + row_h * len(groups), "color": _color(e)} for e in range(n_exits)],
    }


VERDICT_COLORS = {"better": "#2d6a4f", "worse": "#b00020", "not distinguishable from noise": "#888"}
NO_VERDICT_COLOR = PALETTE[0]  # a difference without a direction (TPR or FPR alone)


def forest_limit(rows: Iterable[Mapping]) -> float:
    """Half the width of a forest plot's axis: the largest |difference| or |interval end| of ``rows``,
    rounded up to 1, 2, 2.5 or 5 × 10^k. Plots drawn with the limit of all their rows share one scale."""
    extent = max(
        (abs(r[k]) for r in rows for k in ("difference", "ci_low", "ci_high") if r.get(k) is not None), default=0.0
    )
    if extent == 0:
        return 0.1
    power = 10.0 ** math.floor(math.log10(extent))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= extent * (1 - 1e-12))


def forest_chart(title: str, rows: Sequence[Mapping], limit: float) -> dict[str, Any]:
    """One row per difference (``label``, ``difference``, ``ci_low``, ``ci_high``, ``verdict``): its
    interval as a line and its estimate as a square, coloured by verdict, on an axis from −``limit``
    to ``limit`` with 0 marked. An undefined difference is named, not drawn."""
    left, plot_w, row_h, top = 210, 320, 16, 30
    height = top + row_h * len(rows) + 44

    def x(value: float) -> float:
        return left + (value + limit) / (2 * limit) * plot_w

    drawn = []
    for i, r in enumerate(rows):
        d, low, high, verdict = r.get("difference"), r.get("ci_low"), r.get("ci_high"), r.get("verdict")
        interval = f" [{fmt(low)}, {fmt(high)}]" if low is not None and high is not None else ""
        drawn.append(
            {
                "label": str(r["label"])[:34],
                "y": top + row_h * i + row_h / 2,
                "x": None if d is None else x(d),
                "low": None if d is None or low is None or high is None else x(low),
                "high": None if d is None or low is None or high is None else x(high),
                "color": VERDICT_COLORS.get(str(verdict), NO_VERDICT_COLOR),
                "tip": f"{r['label']}: {fmt(d)}{interval}, {verdict or 'no verdict'}",
            }
        )
    bottom = top + row_h * len(rows)
    grid = [{"x": x(t * limit), "label": f"{t * limit:g}", "zero": t == 0} for t in (-1, -0.5, 0, 0.5, 1)]
    keys = [*VERDICT_COLORS.items(), ("no verdict", NO_VERDICT_COLOR)]
    legend = [{"x": 10 + 130 * i, "y": bottom + 24, "color": c, "label": k} for i, (k, c) in enumerate(keys)]
    return {
        **{"title": title, "width": left + plot_w + 30, "height": height, "left": left, "top": top},
        **{"bottom": bottom, "rows": drawn, "grid": grid, "legend": legend},
    }


# --- the page ------------------------------------------------------------------------------------


def _charts(entry: Mapping) -> list[tuple[str, dict[str, Any]]]:
    """(macro, chart) of a grouping: rate bars, and its curves when few enough groups to tell apart."""
    groups, curves = entry["groups"], entry.get("curves")
    charts = [("rate_bars", rate_bars_chart(groups))] if len(groups) <= MAX_BAR_GROUPS else []
    if curves and len(groups) <= MAX_CURVE_GROUPS:
        charts += [("plot", roc_chart(curves["roc"])), ("plot", reliability_chart(curves["reliability"]))]
    return charts


def _facts(report: Mapping, metadata: Mapping[str, object] | None) -> dict[str, object]:
    config, population = report["config"], report["population"]
    trained = config.get("trained_attributes")
    return {
        **{str(k): v for k, v in (metadata or {}).items()},
        "metric definition version": report["metric_definition_version"],
        "samples (positives / negatives)": f"{population['n']} ({population['n_pos']} / {population['n_neg']})",
        "threshold": (
            f"{fmt(config['threshold'])}: {threshold_source(config)}"
            if config.get("threshold_per_sample")
            else config["threshold"]
        ),
        "bootstrap": f"{config['n_boot']} stratified resamples, seed {config['seed']}",
        "confidence": config["confidence"],
        "minimum count": config["min_count"],
        **({"trained on (training groups)": " × ".join(trained)} if trained else {}),
        "intersections reported": _intersections(report),
    }


def _intersections(report: Mapping) -> str:
    return ", ".join(g["attribute"] for g in report["groupings"] if g["kind"] == "intersection") or "none"


def _exit_sections(exits: Mapping | None) -> list[dict[str, Any]]:
    if not exits:
        return []
    return [
        {
            "entry": entry,
            "chart": exit_bars_chart(entry["groups"], exits["n_exits"])
            if len(entry["groups"]) <= MAX_CURVE_GROUPS
            else None,
        }
        for entry in exits["groupings"]
    ]


def _comparisons(comparison: Mapping) -> list[dict[str, Any]]:
    """Each compared model's rows, the difference being the value its cell shows with its interval."""
    return [
        {
            "model": str(c["model"]),
            "reference": str(c["reference"]),
            "rows": [{**r, "value": r["difference"]} for r in c["differences"]],
            "verdicts": c.get("verdicts", []),
            "compute": c.get("compute"),
        }
        for c in comparison["comparisons"]
    ]


def _operating(report: Mapping, record: Mapping[str, Any] | None) -> dict[str, Any]:
    """The operating-point section: threshold, rule in words, per-group TPR/FPR at it (evaluated
    data, with intervals) and, when recorded, the same on the split the threshold was chosen on."""
    rows = operating_point_rows(report)
    attributes = dict.fromkeys(r["attribute"] for r in rows)  # in report order
    return {
        "threshold": report["config"]["threshold"],
        "rule": describe_rule(record, threshold_source(report["config"])),
        "attributes": [(a, [r for r in rows if r["attribute"] == a]) for a in attributes],
        "chosen": (record or {}).get("operating_point"),
        "chosen_on": (record or {}).get("chosen_on"),
    }


def binary_sections(report: Mapping, threshold_rule: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What ``binary.html``'s ``sections`` draws of one binary report: summary, operating point, groups
    with their charts, exits, each exit on its own."""
    policy = next(e for e in report["evaluations"] if e["exit"] == "policy")
    exits = report.get("exits")
    return {
        "summary": report["summary"],
        "operating": _operating(report, threshold_rule),
        "groupings": [{"entry": entry, "charts": _charts(entry)} for entry in policy["groupings"]],
        **exit_context(exits),
        "per_exit": report["evaluations"] if len(report["evaluations"]) >= 2 else [],
    }


def exit_context(exits: Mapping | None) -> dict[str, Any]:
    """The early-exit section's table headers and, per grouping, its table and chart (every task)."""
    return {
        "exit_headers": [f"exit {e}" for e in range(exits["n_exits"])] if exits else [],
        "exit_sections": _exit_sections(exits),
    }


def render_html(
    report: Mapping,
    *,
    title: str = "Fairness audit",
    metadata: Mapping[str, object] | None = None,
    comparison: Mapping | None = None,
    threshold_rule: Mapping[str, Any] | None = None,
    related: Sequence[tuple[str, str]] = (),
    finding_threshold_rules: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """The whole page. ``metadata``: model version, ONNX SHA-256s, cohort, split... shown first;
    ``threshold_rule``: the record of how the operating threshold was chosen, if there is one;
    ``related``: (label, URL) of the service's pages about the same evaluation (its study);
    ``finding_threshold_rules``: a multi-label model's record of each finding's threshold choice
    (finding -> ``ThresholdRule``), if there is one. A multi-class or multi-label report (its ``task``)
    gets its own page (``multiclass.html``, ``multilabel.html``)."""
    task = report.get("task", "binary")
    if task == "multiclass":
        return _render_multiclass(report, title, metadata, comparison, related)
    if task == "multilabel":
        return _render_multilabel(report, title, metadata, comparison, related, finding_threshold_rules or {})
    return (
        environment()
        .get_template("report.html")
        .render(
            title=title,
            facts=_facts(report, metadata),
            related=list(related),
            sections=binary_sections(report, threshold_rule),
            comparison=comparison,
            comparisons=_comparisons(comparison) if comparison is not None else [],
        )
    )


# --- multi-class and multi-label pages ------------------------------------------------------------


def _multiclass_facts(report: Mapping, metadata: Mapping[str, object] | None) -> dict[str, object]:
    config, population = report["config"], report["population"]
    return {
        **{str(k): v for k, v in (metadata or {}).items()},
        "metric definition version": report["metric_definition_version"],
        "task": f"multiclass, {len(report['classes'])} classes",
        "samples": population["n"],
        "decision": config["decision"],
        "bootstrap": f"{config['n_boot']} resamples stratified by group × class, seed {config['seed']}",
        "confidence": config["confidence"],
        "minimum count": config["min_count"],
        "intersections reported": _intersections(report),
    }


def _render_multiclass(
    report: Mapping,
    title: str,
    metadata: Mapping[str, object] | None,
    comparison: Mapping | None,
    related: Sequence[tuple[str, str]],
) -> str:
    return (
        environment()
        .get_template("multiclass.html")
        .render(
            title=title,
            facts=_multiclass_facts(report, metadata),
            related=list(related),
            summary=report["summary"],
            **multiclass_context(report, MAX_CURVE_GROUPS),
            exit_context=exit_context(report.get("exits")),
            per_exit=report["evaluations"] if len(report["evaluations"]) >= 2 else [],
            comparison=comparison,
            comparisons=_comparisons(comparison) if comparison is not None else [],
        )
    )


SUMMARY_GAPS = ["pfd", "eopp1", "eopp0", "eodd"]


def _finding_rule(report: Mapping, name: str, rules: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """How a finding's threshold was chosen: the model's record, else the one an audit fitted."""
    return rules.get(name) or report["per_finding"][name]["config"].get("threshold_rule")


def _render_multilabel(
    report: Mapping,
    title: str,
    metadata: Mapping[str, object] | None,
    comparison: Mapping | None,
    related: Sequence[tuple[str, str]],
    rules: Mapping[str, Mapping[str, Any]],
) -> str:
    """The findings' summary table, then each finding's binary sections under its own heading."""
    population = report["population"]
    facts = {
        **{str(k): v for k, v in (metadata or {}).items()},
        "metric definition version": report["metric_definition_version"],
        "task": f"multilabel, {len(report['findings'])} findings",
        "samples": population["n"],
    }
    findings = [
        {
            "name": name,
            "facts": _facts(report["per_finding"][name], None),
            "sections": binary_sections(report["per_finding"][name], _finding_rule(report, name, rules)),
        }
        for name in report["findings"]
    ]
    return (
        environment()
        .get_template("multilabel.html")
        .render(
            title=title,
            facts=facts,
            related=list(related),
            population=population,
            summary=report["summary"],
            summary_gaps=SUMMARY_GAPS,
            findings=findings,
            comparison=comparison,
            comparisons=_comparisons(comparison) if comparison is not None else [],
        )
    )
