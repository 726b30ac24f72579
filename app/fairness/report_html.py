"""Render a fairness report (``build_report``'s dict) as one self-contained HTML page.

No scripts, no external resources: charts are inline SVG, styles are inline CSS, so the page can be
archived, e-mailed or printed as it is. Every string that comes from users (attribute names, group
labels, metadata) is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from app.fairness.engine.gaps import GAPS

PALETTE = ("#1b6ca8", "#d1495b", "#edae49", "#00798c", "#66a182", "#8d6cab", "#2e4057", "#c17c74")
MAX_CURVE_GROUPS = 8  # more curves in one small chart cannot be told apart
MAX_BAR_GROUPS = 24
TABLE_METRICS = ("prevalence", "auc", "pf", "tpr", "fpr", "ppv", "npv", "ece", "brier")
GAP_ORDER = tuple(GAPS)  # the engine's order: PF first, then AUC, rates and Fairlearn's differences

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:1100px;
color:#222;line-height:1.4;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.3rem;margin-top:2.2rem;border-bottom:1px solid #ccc}
h3{font-size:1.1rem;margin-top:1.6rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f4f4f4}
.verdict{font-size:1.15rem;background:#fff8e1;border-left:4px solid #edae49;padding:.8rem 1rem}
.ci{color:#666;font-size:.8em}.insufficient{color:#999}.undefined{color:#bbb}
.sig{font-weight:bold;color:#b00020}.charts{display:flex;flex-wrap:wrap;gap:1rem}
.note{color:#555;font-size:.85rem}svg{background:#fff;border:1px solid #eee}
"""


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _p(value: float | None) -> str:
    return "—" if value is None else f"{value:.2g}"


def _cell(entry: Mapping | None) -> str:
    """A value with its interval, styled by status; undefined shows a dash, never 0."""
    if entry is None or entry.get("value") is None:
        status = "undefined" if entry is None else entry.get("status", "undefined")
        return f'<td class="undefined" title="{escape(status)}">—</td>'
    status = str(entry.get("status", "ok"))
    ci = ""
    if entry.get("ci_low") is not None and entry.get("ci_high") is not None:
        ci = f' <span class="ci">[{_fmt(entry["ci_low"])}, {_fmt(entry["ci_high"])}]</span>'
    css = f' class="{escape(status)}"' if status != "ok" else ""
    mark = "*" if status == "insufficient" else ""
    return f'<td{css} title="{escape(status)}">{_fmt(entry["value"])}{mark}{ci}</td>'


def _table(headers: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


# --- SVG -----------------------------------------------------------------------------------------

W, H, PAD = 300, 300, 40


def _xy(x: float, y: float) -> tuple[float, float]:
    return PAD + x * (W - 2 * PAD), H - PAD - y * (H - 2 * PAD)


def _axes(title: str, x_label: str, y_label: str) -> str:
    x0, y0 = _xy(0, 0)
    x1, y1 = _xy(1, 1)
    ticks = "".join(
        f'<text x="{_xy(t, 0)[0]:.1f}" y="{y0 + 14:.1f}" font-size="9" text-anchor="middle">{t:g}</text>'
        f'<text x="{x0 - 6:.1f}" y="{_xy(0, t)[1] + 3:.1f}" font-size="9" text-anchor="end">{t:g}</text>'
        for t in (0, 0.5, 1)
    )
    return (
        f'<text x="{W / 2}" y="16" font-size="12" text-anchor="middle">{escape(title)}</text>'
        f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="none" stroke="#999"/>'
        f'<text x="{W / 2}" y="{H - 6}" font-size="10" text-anchor="middle">{escape(x_label)}</text>'
        f'<text x="12" y="{H / 2}" font-size="10" text-anchor="middle" '
        f'transform="rotate(-90 12 {H / 2})">{escape(y_label)}</text>{ticks}'
    )


def _legend(labels: list[str], corner: str) -> str:
    """Colour keys inside the plot, in a corner the curves leave empty ("top-left"/"bottom-right")."""
    x = PAD + 6 if corner == "top-left" else W - PAD - 95
    y = PAD + 4 if corner == "top-left" else H - PAD - 6 - 13 * len(labels)
    return "".join(
        f'<rect x="{x}" y="{y + 13 * i}" width="9" height="9" fill="{PALETTE[i % len(PALETTE)]}"/>'
        f'<text x="{x + 13}" y="{y + 8 + 13 * i}" font-size="9">{escape(label[:22])}</text>'
        for i, label in enumerate(labels)
    )


def _svg(body: str, width: int = W, height: int = H) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">{body}</svg>'
    )


def roc_svg(curves: Mapping[str, Mapping | None]) -> str:
    """ROC curve of each group (diagonal for reference)."""
    x0, y0 = _xy(0, 0)
    x1, y1 = _xy(1, 1)
    body = [_axes("ROC by group", "FPR", "TPR"), f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#ccc"/>']
    labels = []
    for i, (label, curve) in enumerate(curves.items()):
        labels.append(label)
        if not curve:
            continue
        xy = (_xy(a, b) for a, b in zip(curve["fpr"], curve["tpr"], strict=True))
        points = " ".join(f"{px:.1f},{py:.1f}" for px, py in xy)
        color = PALETTE[i % len(PALETTE)]
        body.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.6"/>')
    body.append(_legend(labels, "bottom-right"))
    return _svg("".join(body))


def reliability_svg(points: Mapping[str, list[Mapping]]) -> str:
    """Observed positive fraction against mean score per bin, one series per group."""
    x0, y0 = _xy(0, 0)
    x1, y1 = _xy(1, 1)
    body = [
        _axes("Calibration by group", "mean score", "observed"),
        f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="#ccc" stroke-dasharray="3,3"/>',
    ]
    for i, series in enumerate(points.values()):
        color = PALETTE[i % len(PALETTE)]
        xy = [_xy(p["mean_score"], p["observed"]) for p in series]
        if xy:
            path = " ".join(f"{a:.1f},{b:.1f}" for a, b in xy)
            body.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1"/>')
            body.extend(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.5" fill="{color}"/>' for a, b in xy)
    body.append(_legend(list(points), "top-left"))
    return _svg("".join(body))


def rate_bars_svg(groups: list[Mapping]) -> str:
    """TPR and FPR per group: bars with Wilson-interval whiskers; undefined rates are left empty."""
    row_h, left, width = 16, 120, 420
    height = 40 + row_h * 2 * len(groups) + 10
    scale = width - left - 20
    body = [f'<text x="{width / 2}" y="14" font-size="12" text-anchor="middle">TPR and FPR by group</text>']
    for t in (0, 0.25, 0.5, 0.75, 1):
        x = left + t * scale
        body.append(f'<line x1="{x}" y1="24" x2="{x}" y2="{height - 10}" stroke="#eee"/>')
        body.append(f'<text x="{x}" y="{height}" font-size="9" text-anchor="middle">{t:g}</text>')
    for i, g in enumerate(groups):
        y = 28 + 2 * i * row_h
        body.append(
            f'<text x="{left - 6}" y="{y + row_h - 2}" font-size="10" text-anchor="end">'
            f"{escape(str(g['group'])[:20])}</text>"
        )
        for j, (metric, color) in enumerate((("tpr", PALETTE[0]), ("fpr", PALETTE[1]))):
            entry = g["metrics"][metric]
            top = y + j * row_h
            if entry["value"] is None:
                body.append(f'<text x="{left + 4}" y="{top + 11}" font-size="9" fill="#999">{metric}: undefined</text>')
                continue
            opacity = "1" if entry["status"] == "ok" else "0.4"
            body.append(
                f'<rect x="{left}" y="{top + 2}" width="{entry["value"] * scale:.1f}" height="{row_h - 5}" '
                f'fill="{color}" fill-opacity="{opacity}"><title>{metric} {_fmt(entry["value"])}</title></rect>'
            )
            if entry["ci_low"] is not None and entry["ci_high"] is not None:
                a, b, mid = left + entry["ci_low"] * scale, left + entry["ci_high"] * scale, top + row_h / 2
                body.append(
                    f'<path d="M{a:.1f},{mid:.1f}H{b:.1f}M{a:.1f},{mid - 4:.1f}V{mid + 4:.1f}'
                    f'M{b:.1f},{mid - 4:.1f}V{mid + 4:.1f}" stroke="#222" fill="none"/>'
                )
    body.append(
        f'<rect x="{width - 90}" y="20" width="9" height="9" fill="{PALETTE[0]}"/>'
        f'<text x="{width - 78}" y="28" font-size="9">TPR</text>'
        f'<rect x="{width - 50}" y="20" width="9" height="9" fill="{PALETTE[1]}"/>'
        f'<text x="{width - 38}" y="28" font-size="9">FPR</text>'
    )
    return _svg("".join(body), width, height + 6)


def exit_bars_svg(groups: list[Mapping], n_exits: int) -> str:
    """Stacked bars: the share of each group leaving at each exit."""
    row_h, left, width = 18, 120, 420
    height = 36 + row_h * len(groups) + 20
    scale = width - left - 20
    body = [f'<text x="{width / 2}" y="14" font-size="12" text-anchor="middle">Exit taken, by group</text>']
    for i, g in enumerate(groups):
        y = 26 + i * row_h
        body.append(
            f'<text x="{left - 6}" y="{y + 12}" font-size="10" text-anchor="end">{escape(str(g["group"])[:20])}</text>'
        )
        x = float(left)
        for e, rate in enumerate(g["exit_rates"]):
            share = rate["value"] or 0.0
            body.append(
                f'<rect x="{x:.1f}" y="{y}" width="{share * scale:.1f}" height="{row_h - 4}" '
                f'fill="{PALETTE[e % len(PALETTE)]}"><title>exit {e}: {_fmt(share)}</title></rect>'
            )
            x += share * scale
    legend_y = 30 + row_h * len(groups)
    body.extend(
        f'<rect x="{left + 50 * e}" y="{legend_y}" width="9" height="9" fill="{PALETTE[e % len(PALETTE)]}"/>'
        f'<text x="{left + 50 * e + 12}" y="{legend_y + 8}" font-size="9">exit {e}</text>'
        for e in range(n_exits)
    )
    return _svg("".join(body), width, height)


# --- sections ------------------------------------------------------------------------------------


def _header(report: Mapping, metadata: Mapping[str, object] | None, title: str) -> str:
    config, population = report["config"], report["population"]
    facts = {
        **{str(k): v for k, v in (metadata or {}).items()},
        "metric definition version": report["metric_definition_version"],
        "samples (positives / negatives)": f"{population['n']} ({population['n_pos']} / {population['n_neg']})",
        "threshold": config["threshold"],
        "bootstrap": f"{config['n_boot']} stratified resamples, seed {config['seed']}",
        "confidence": config["confidence"],
        "minimum count": config["min_count"],
    }
    rows = [f"<tr><td>{escape(k)}</td><td>{escape(str(v))}</td></tr>" for k, v in facts.items()]
    return f"<h1>{escape(title)}</h1>{_table(['', ''], rows)}"


def _summary(report: Mapping) -> str:
    summary = report["summary"]
    rows = [
        f"<tr><td>{escape(f['attribute'])}</td><td>{escape(f['gap'])}</td>"
        f"{_cell({'value': f['value'], 'ci_low': f['ci_low'], 'ci_high': f['ci_high'], 'status': 'ok'})}"
        f'<td class="{"sig" if f["significant"] else ""}">{_p(f["p_value"])}</td></tr>'
        for f in summary["findings"]
    ]
    overall = "".join(f"<tr><td>{escape(m)}</td>{_cell(v)}</tr>" for m, v in summary["overall"].items())
    return (
        f'<h2>Summary</h2><p class="verdict">{escape(summary["verdict"])}</p>'
        f"{_table(['attribute', 'gap', 'value [CI]', 'Holm p'], rows)}"
        f'<p class="note">Significance: a group differs from the rest (Holm-adjusted, alpha '
        f"{summary['alpha']:.2g}). Values marked * rest on fewer than the minimum count.</p>"
        f"<h3>Overall (served policy)</h3>{_table(['metric', 'value [CI]'], [overall])}"
    )


def _grouping(entry: Mapping) -> str:
    groups = entry["groups"]
    head = ["group", "n", "n+", *TABLE_METRICS]
    rows = [
        f"<tr><td>{escape(g['group'])}</td><td>{g['n']}</td><td>{g['n_pos']}</td>"
        + "".join(_cell(g["metrics"][m]) for m in TABLE_METRICS)
        + "</tr>"
        for g in groups
    ]
    parts = [f"<h3>{escape(entry['attribute'])}</h3>"]
    if entry.get("n_missing"):
        parts.append(f'<p class="note">{entry["n_missing"]} samples with a missing value are in no group.</p>')
    parts.append(_table(head, rows))
    gaps = entry.get("gaps")
    if gaps:
        gap_rows = [
            f"<tr><td>{escape(name)}</td>{_cell(gaps[name])}<td>{_p(gaps[name]['p_value'])}</td>"
            f"<td>{escape(gaps[name]['status'])}</td><td>"
            + escape(", ".join(f"{x['group']} ({x['status']})" for x in gaps[name]["left_out"]))
            + "</td></tr>"
            for name in GAP_ORDER
            if name in gaps
        ]
        parts.append(_table(["gap", "value [CI]", "Holm p", "status", "left out"], gap_rows))
    charts = [rate_bars_svg(groups)] if len(groups) <= MAX_BAR_GROUPS else []
    curves = entry.get("curves")
    if curves and len(groups) <= MAX_CURVE_GROUPS:
        charts.append(roc_svg(curves["roc"]))
        charts.append(reliability_svg(curves["reliability"]))
    parts.append(f'<div class="charts">{"".join(charts)}</div>')
    return "".join(parts)


def _exits(report: Mapping) -> str:
    exits = report.get("exits")
    if not exits:
        return ""
    parts = ["<h2>Early exits</h2>"]
    for entry in exits["groupings"]:
        rows = [
            f"<tr><td>{escape(g['group'])}</td><td>{g['n']}</td>"
            + "".join(_cell(r) for r in g["exit_rates"])
            + (_cell(g["mean_compute"]) if g["mean_compute"] else "<td>—</td>")
            + "</tr>"
            for g in entry["groups"]
        ]
        head = ["group", "n", *[f"exit {e}" for e in range(exits["n_exits"])], "mean compute"]
        parts.append(f"<h3>{escape(entry['attribute'])}</h3>{_table(head, rows)}")
        if len(entry["groups"]) <= MAX_CURVE_GROUPS:
            parts.append(exit_bars_svg(entry["groups"], exits["n_exits"]))
    return "".join(parts)


def _per_exit(report: Mapping) -> str:
    evaluations = report["evaluations"]
    if len(evaluations) < 2:
        return ""
    rows = []
    for evaluation in evaluations:
        for entry in evaluation["groupings"][1:]:
            gaps = entry["gaps"]
            auc = evaluation["groupings"][0]["groups"][0]["metrics"]["auc"]
            rows.append(
                f"<tr><td>{escape(str(evaluation['exit']))}</td><td>{escape(entry['attribute'])}</td>{_cell(auc)}"
                + "".join(_cell(gaps[g]) for g in ("pfd", "eopp1", "eopp0", "eodd"))
                + "</tr>"
            )
    head = ["exit", "attribute", "overall AUC", "pfd", "eopp1", "eopp0", "eodd"]
    return f"<h2>Each exit on its own</h2>{_table(head, rows)}"


def _comparison(comparison: Mapping) -> str:
    parts = [f"<h2>Comparison with {escape(str(comparison['reference']))}</h2>"]
    parts.append(f'<p class="note">{comparison["n_matched"]} samples matched by id; paired bootstrap.</p>')
    for comp in comparison["comparisons"]:
        rows = [
            f"<tr><td>{escape(r['attribute'])}</td><td>{escape(r['metric'])}</td>"
            f"<td>{_fmt(r['value_reference'])}</td><td>{_fmt(r['value_model'])}</td>"
            f"{_cell({**r, 'value': r['difference']})}"
            f'<td class="{"sig" if (r["p_holm"] or 1) < 0.05 else ""}">{_p(r["p_holm"])}</td></tr>'
            for r in comp["differences"]
        ]
        head = ["attribute", "metric", str(comp["reference"]), str(comp["model"]), "difference [CI]", "Holm p"]
        parts.append(f"<h3>{escape(str(comp['model']))}</h3>{_table(head, rows)}")
    return "".join(parts)


def render_html(
    report: Mapping,
    *,
    title: str = "Fairness audit",
    metadata: Mapping[str, object] | None = None,
    comparison: Mapping | None = None,
) -> str:
    """The whole page. ``metadata``: model version, ONNX SHA-256s, cohort, split... shown first."""
    policy = next(e for e in report["evaluations"] if e["exit"] == "policy")
    body = [_header(report, metadata, title), _summary(report), "<h2>Groups (served policy)</h2>"]
    body.extend(_grouping(entry) for entry in policy["groupings"])
    body.extend([_exits(report), _per_exit(report)])
    if comparison is not None:
        body.append(_comparison(comparison))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>"
    )
