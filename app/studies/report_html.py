"""Render a finished study as one self-contained HTML page (``GET /v1/studies/{id}/report``).

The page extends the evaluation report's frame and uses its macros and charts
(``app.fairness.report_html.environment``): the same cells (value, interval, across-fold spread), the
same TPR/FPR bars, and a forest plot of the paired differences. Every chart has a table beside it
with the numbers it draws. The numbers are the study's ``result`` (the comparison, verdicts, fold
thresholds) and its configs' pooled evaluations (``reports``, by config index); nothing is
recomputed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.fairness.report_html import MAX_BAR_GROUPS, environment, fmt, forest_chart, forest_limit, rate_bars_chart
from app.studies.schemas import StudyChild, StudyOut

GROUP_METRICS = ("pf", "tpr", "fpr")
HEADLINE_GAPS = ("pfd", "eopp1", "eopp0", "eodd", "worst_group_auc", "auc_gap")
OVERALL_METRICS = ("auc", "tpr", "fpr")
#: A multi-class study's columns: the class-averaged gaps and the paper's macro F1 "Diff".
MULTICLASS_COLUMNS = {
    "overall_metrics": ["accuracy", "balanced_accuracy", "macro_f1"],
    "headline_gaps": ["eopp0", "eopp1", "eodd", "macro_f1_diff"],
    "group_metrics": ["accuracy", "balanced_accuracy", "macro_f1"],
    "groups_title": "accuracy, balanced accuracy and macro F1",
}
BINARY_COLUMNS = {
    "overall_metrics": list(OVERALL_METRICS),
    "headline_gaps": list(HEADLINE_GAPS),
    "group_metrics": list(GROUP_METRICS),
    "groups_title": "PF, TPR and FPR",
}
SHOWN_SETTINGS = ("method", "sensitive_attributes", "backbone", "epochs", "seed", "threshold_rule")


def _policy(report: Mapping[str, Any]) -> Mapping[str, Any]:
    """The served policy's evaluation (the one a single-exit model also has)."""
    return next(e for e in report["evaluations"] if e["exit"] == "policy")


def _groupings(report: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {g["attribute"]: g for g in _policy(report)["groupings"] if g["kind"] != "overall"}


def _setting(value: Any) -> str:
    return " × ".join(map(str, value)) if isinstance(value, list) else str(value)


def _configs(study: StudyOut) -> list[dict[str, Any]]:
    """Each config: its main settings, and every setting where it differs from the reference."""
    reference = study.configs[0]
    summaries = {s["index"]: s for s in (study.result or {})["configs"]}
    return [
        {
            "summary": summaries[i],
            "settings": {k: _setting(config.get(k)) for k in SHOWN_SETTINGS},
            "differs": {k: _setting(v) for k, v in config.items() if k not in SHOWN_SETTINGS and reference.get(k) != v},
        }
        for i, config in enumerate(study.configs)
    ]


def _comparisons(comparison: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Each config against the reference: its forest plot (one row per difference, every chart on the
    scale of all of them) and the same rows as a table."""
    if comparison is None:
        return []
    differences = [_with_compute(c) for c in comparison["comparisons"]]
    limit = forest_limit(row for rows in differences for row in rows)
    out = []
    for compared, plotted in zip(comparison["comparisons"], differences, strict=True):
        rows = [{**r, "label": f"{r['attribute']} · {r['metric']}", "value": r["difference"]} for r in plotted]
        out.append(
            {
                "model": compared["model"],
                "reference": compared["reference"],
                "verdicts": {v["attribute"]: v["verdict"] for v in compared["verdicts"]},
                "rows": rows,
                "chart": forest_chart(f"{compared['model']} − {compared['reference']}", rows, limit),
            }
        )
    return out


def _with_compute(compared: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The comparison's differences and, last, its Δ mean compute as one more row (no verdict)."""
    compute = compared.get("compute")
    extra = [{"attribute": "overall", "metric": "mean_compute", "verdict": None, **compute}] if compute else []
    return [*compared["differences"], *extra]


def _verdict_matrix(comparisons: list[dict[str, Any]]) -> tuple[list[str], list[tuple[str, list[str | None]]]]:
    """(attributes, [(config, verdict per attribute)]): one table of every config's verdicts."""
    attributes = list(dict.fromkeys(a for c in comparisons for a in c["verdicts"]))
    return attributes, [(c["model"], [c["verdicts"].get(a) for a in attributes]) for c in comparisons]


def _group_sections(configs: list[dict[str, Any]], reports: Mapping[int, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per attribute (and intersection): every group's PF, TPR and FPR under every config, and the
    TPR/FPR bars of the same rows when few enough to read."""
    per_config = {i: _groupings(report) for i, report in reports.items()}
    attributes = list(dict.fromkeys(a for groupings in per_config.values() for a in groupings))
    sections = []
    for attribute in attributes:
        rows = [
            {"config": configs[i]["summary"]["label"], "index": i, "group": g}
            for i, groupings in sorted(per_config.items())
            if attribute in groupings
            for g in groupings[attribute]["groups"]
        ]
        rows.sort(key=lambda r: (str(r["group"]["group"]), r["index"]))
        bars = [{"group": f"{r['group']['group']} · c{r['index']}", "metrics": r["group"]["metrics"]} for r in rows]
        binary = all("tpr" in r["group"]["metrics"] for r in rows)  # a multi-class group has no one TPR
        chart = rate_bars_chart(bars) if binary and len(bars) <= MAX_BAR_GROUPS else None
        sections.append({"attribute": attribute, "rows": rows, "chart": chart})
    return sections


def _headlines(configs: list[dict[str, Any]], reports: Mapping[int, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per config: its overall metrics and each attribute's gaps, pooled, with the across-fold spread,
    and the groups a shown gap leaves out."""
    out = []
    for i, report in sorted(reports.items()):
        gaps = []
        for attribute, grouping in _groupings(report).items():
            shown = {name: gap for name, gap in grouping.get("gaps", {}).items() if name in HEADLINE_GAPS}
            left = {x["group"]: x for gap in shown.values() for x in gap.get("left_out", [])}
            gaps.append((attribute, shown, list(left.values())))
        out.append({"label": configs[i]["summary"]["label"], "overall": report["summary"]["overall"], "gaps": gaps})
    return out


def _exits(configs: list[dict[str, Any]], reports: Mapping[int, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per config: the share of all samples leaving at each exit and the mean compute (a single-exit
    model: its final head, compute 1)."""
    out = []
    for i, report in sorted(reports.items()):
        exits = report.get("exits")
        overall = exits["groupings"][0]["groups"][0] if exits else None
        out.append(
            {
                "label": configs[i]["summary"]["label"],
                "n_exits": exits["n_exits"] if exits else 1,
                "rates": overall["exit_rates"] if overall else [],
                "compute": overall["mean_compute"] if overall else {"value": 1.0, "status": "ok"},
            }
        )
    return out


def _folds(
    configs: list[dict[str, Any]], children: list[StudyChild], reports: Mapping[int, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Per config: the pooled threshold and each fold model's own, with its held-out evaluation."""
    held_out = {(c.config, f"s{c.seed}/f{c.fold}"): c.evaluation_id for c in children if c.fold is not None}
    out = []
    for i, config in enumerate(configs):
        summary = config["summary"]
        out.append(
            {
                "label": summary["label"],
                "pooled": _threshold(reports[i].get("config", {}).get("threshold") if i in reports else None),
                "folds": [(fold, _threshold(t), held_out.get((i, fold))) for fold, t in summary["thresholds"].items()],
            }
        )
    return out


def _threshold(value: float | list[float] | None) -> str:
    """A fold model's decision thresholds: binary one, multiclass one per class (none: argmax),
    multilabel one per finding."""
    return ", ".join(fmt(t) for t in value) if isinstance(value, list) else fmt(value)


def _views(configs: list[dict[str, Any]], reports: Mapping[int, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The pooled sections (headlines, groups, exits) once for a binary or multi-class study, once per
    finding for a multi-label one (each finding's pooled report is binary)."""
    tasks = {report.get("task", "binary") for report in reports.values()}
    if tasks == {"multilabel"}:
        findings = dict.fromkeys(f for report in reports.values() for f in report["findings"])
        return [
            _view(configs, {i: r["per_finding"][f] for i, r in reports.items() if f in r["per_finding"]}, f": {f}")
            for f in findings
        ]
    return [_view(configs, reports, "", MULTICLASS_COLUMNS if tasks == {"multiclass"} else BINARY_COLUMNS)]


def _view(
    configs: list[dict[str, Any]],
    reports: Mapping[int, Mapping[str, Any]],
    suffix: str,
    columns: Mapping[str, Any] = BINARY_COLUMNS,
) -> dict[str, Any]:
    return {
        **columns,
        "suffix": suffix,
        "headlines": _headlines(configs, reports),
        "group_sections": _group_sections(configs, reports),
        "exits": _exits(configs, reports),
    }


def _links(evaluation_id: str) -> list[tuple[str, str]]:
    base = f"/v1/evaluations/{evaluation_id}"
    return [
        ("report", f"{base}/report"),
        ("model card", f"{base}/model-card"),
        ("predictions (CSV)", f"{base}/predictions.csv"),
    ]


def render_study_html(study: StudyOut, reports: Mapping[int, Mapping[str, Any]]) -> str:
    """The page of a succeeded study; ``reports``: each config's pooled report, by config index."""
    result = study.result or {}
    configs = _configs(study)
    comparison = result.get("comparison")
    comparisons = _comparisons(comparison)
    verdict_attributes, verdicts = _verdict_matrix(comparisons)
    return (
        environment("app.studies")
        .get_template("study_report.html")
        .render(
            title=f"Study: {study.name}",
            study=study,
            reference=configs[0]["summary"]["label"],
            configs=configs,
            comparison=comparison,
            comparisons=comparisons,
            verdict_attributes=verdict_attributes,
            verdicts=verdicts,
            views=_views(configs, reports),
            folds=_folds(configs, study.children, reports),
            pooled_links=[_links(c["summary"]["evaluation_id"]) if i in reports else [] for i, c in enumerate(configs)],
            final_models=[c for c in study.children if c.fold is None],
        )
    )
