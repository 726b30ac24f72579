"""Paired comparison of models evaluated on the same samples.

Every model is scored on the same stratified resamples (same seed, same strata, same blocks), so a
difference's interval reflects only how the models disagree on the same patients, not how the
patients were sampled twice. Headline metrics: overall AUC, TPR, FPR, ECE and Brier, and per
attribute (and intersection) pfd, auc_gap, worst_group_auc, eopp1, eopp0, eodd,
demographic_parity_difference and equalized_odds_difference. Each difference (model − reference)
has a percentile interval and a two-sided p-value (Wald, paired-bootstrap standard error), also
Holm-adjusted over the metrics of that comparison.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from app.fairness.engine.bootstrap import run_bootstrap
from app.fairness.engine.evaluate import num
from app.fairness.engine.gaps import gap_status, gap_values, used_groups
from app.fairness.engine.groups import build_design
from app.fairness.engine.inputs import PredictionSet
from app.fairness.engine.intervals import percentile
from app.fairness.engine.kernel import ColumnPlan, GroupArrays, plan_column, point_block
from app.fairness.engine.report import METRIC_DEFINITION_VERSION, run_config, validate
from app.fairness.engine.significance import bootstrap_wald, holm
from app.fairness.engine.status import OK, status_of

OVERALL_METRICS = ("auc", "tpr", "fpr", "ece", "brier")
COMPARED_GAPS = (
    "pfd",
    "auc_gap",
    "worst_group_auc",
    "eopp1",
    "eopp0",
    "eodd",
    "demographic_parity_difference",
    "equalized_odds_difference",
)


def align(predictions: Mapping[str, PredictionSet]) -> tuple[list[np.ndarray], int]:
    """Per model, the indices of the common samples in the reference's order; and that count.

    Models are matched by ``sample_ids``; without ids anywhere, models of equal length are taken to
    be in the same order.
    """
    sets = list(predictions.values())
    if all(p.sample_ids is None for p in sets):
        n = len(sets[0].y_true)
        if any(len(p.y_true) != n for p in sets):
            raise ValueError("models without sample_ids must have the same number of samples")
        return [np.arange(n) for _ in sets], n
    if any(p.sample_ids is None for p in sets):
        raise ValueError("either every model or none must carry sample_ids")
    positions = []
    for p in sets:
        ids = [str(i) for i in np.asarray(p.sample_ids)]
        index = {sid: k for k, sid in enumerate(ids)}
        if len(index) != len(ids):
            raise ValueError("sample_ids must be unique within a model")
        positions.append(index)
    reference_ids = [str(i) for i in np.asarray(sets[0].sample_ids)]
    common = [sid for sid in reference_ids if all(sid in pos for pos in positions[1:])]
    if not common:
        raise ValueError("the models share no sample_ids")
    return [np.array([pos[sid] for sid in common], dtype=np.int64) for pos in positions], len(common)


def headline(plan: ColumnPlan, arrays: dict[str, GroupArrays], min_count: int) -> dict[tuple[str, str], np.ndarray]:
    """``(b,)`` arrays of every headline metric, keyed by (attribute, metric)."""
    out = {("overall", m): arrays["overall"][m][:, 0] for m in OVERALL_METRICS}
    for gp in plan.groupings[1:]:
        statuses = _statuses(gp.n, gp.n_pos, gp.n_neg, plan.n_neg, min_count)
        for name in COMPARED_GAPS:
            if gap_status(name, statuses) == OK:
                values = gap_values(name, arrays[gp.grouping.attribute], used_groups(name, statuses))
            else:
                values = np.full(len(out[("overall", "auc")]), np.nan)
            out[(gp.grouping.attribute, name)] = values
    return out


def _statuses(
    n: np.ndarray, n_pos: np.ndarray, n_neg: np.ndarray, n_neg_total: int, min_count: int
) -> dict[str, np.ndarray]:
    """Statuses depend on counts only, so every model of a comparison has the same ones."""
    return {
        "auc": status_of(np.minimum(n_pos, n_neg), min_count),
        "pf": status_of(np.minimum(n_pos, n_neg_total), min_count),
        "tpr": status_of(n_pos, min_count),
        "fpr": status_of(n_neg, min_count),
        "tnr": status_of(n_neg, min_count),
        "selection_rate": status_of(n, min_count),
    }


def compare_models(
    predictions: Mapping[str, PredictionSet],
    *,
    attributes: list[str],
    intersections: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
    min_count: int = 10,
    confidence: float = 0.95,
) -> dict:
    """Differences of headline metrics, each model against the first (the reference), paired."""
    if len(predictions) < 2:
        raise ValueError("a comparison needs at least two models")
    names = list(predictions)
    sets = [predictions[name] for name in names]
    labels = [validate(p) for p in sets]
    index, n_matched = align(predictions)
    y = labels[0][index[0]]
    for name, lab, idx in zip(names[1:], labels[1:], index[1:], strict=True):
        if not np.array_equal(lab[idx], y):
            raise ValueError(f"model {name!r} has different labels for the same samples")
    reference = sets[0]
    groups = {a: np.asarray(reference.groups[a], dtype=object)[index[0]] for a in attributes}
    policies = [np.asarray(p.policy_scores, dtype=np.float64)[idx] for p, idx in zip(sets, index, strict=True)]
    design = build_design(y, groups, attributes, intersections=intersections, sort_by=policies[0])
    y_int = y[design.order]
    plans = [plan_column(s[design.order], y_int, design, p.threshold) for s, p in zip(policies, sets, strict=True)]
    points = [headline(plan, point_block(plan), min_count) for plan in plans]
    boots = (
        [
            headline(plan, b, min_count)
            for plan, b in zip(plans, run_bootstrap(design, plans, n_boot, seed), strict=True)
        ]
        if n_boot > 0
        else None
    )

    comparisons = []
    for m in range(1, len(names)):
        keys = list(points[0])
        rows = []
        for key in keys:
            diff = points[m][key][0] - points[0][key][0]
            low = high = p = np.nan
            if boots is not None and np.isfinite(diff):
                samples = boots[m][key] - boots[0][key]
                lo, hi = percentile(samples[:, None], confidence)
                low, high = lo[0], hi[0]
                _, p_arr = bootstrap_wald(np.array([diff]), samples[:, None])
                p = p_arr[0]
            rows.append(
                {
                    "attribute": key[0],
                    "metric": key[1],
                    "value_model": num(points[m][key][0]),
                    "value_reference": num(points[0][key][0]),
                    "difference": num(diff),
                    "ci_low": num(low),
                    "ci_high": num(high),
                    "p_value": num(p),
                    "status": OK if np.isfinite(diff) else "undefined",
                }
            )
        adjusted = holm(np.array([np.nan if r["p_value"] is None else r["p_value"] for r in rows]))
        for row, p_holm in zip(rows, adjusted, strict=True):
            row["p_holm"] = num(p_holm)
        comparisons.append({"model": names[m], "reference": names[0], "differences": rows})

    return {
        "metric_definition_version": METRIC_DEFINITION_VERSION,
        "config": run_config(attributes, intersections, n_boot, seed, min_count, confidence),
        "reference": names[0],
        "models": names,
        "n_matched": n_matched,
        "n_unmatched": {name: len(p.y_true) - n_matched for name, p in zip(names, sets, strict=True)},
        "comparisons": comparisons,
    }
