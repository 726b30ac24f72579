"""Paired comparison of models evaluated on the same samples.

Every model is scored on the same stratified resamples (same seed, same strata, same blocks; with
the reference's ``clusters``, the same patient-clustered resamples), so a difference's interval
reflects only how the models disagree on the same patients, not how the patients were sampled twice.
Headline metrics: overall AUC, TPR, FPR, ECE and Brier, and per attribute (and intersection) pfd,
auc_gap, worst_group_auc, eopp1, eopp0, eodd, demographic_parity_difference and
equalized_odds_difference. Each difference (model − reference) has an interval (percentile for the
overall metrics; ``intervals.centred`` for gaps, which are extremum statistics) and a two-sided
p-value (Wald, paired-bootstrap standard error), also Holm-adjusted over the metrics of that
comparison.

Beside the differences: ``compute``, the difference in mean compute of the served policy (each
sample's exit cost: the fraction of that model's own full network it used; 1.0 for a single-exit
model), with a paired percentile interval; and ``verdicts``, one per attribute (see ``verdict``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from app.fairness.engine.binary import METRIC_DEFINITION_VERSION, run_config, validate
from app.fairness.engine.bootstrap import bootstrap_means, run_bootstrap
from app.fairness.engine.evaluate import num
from app.fairness.engine.gaps import gap_status, gap_values, used_groups
from app.fairness.engine.groups import build_design
from app.fairness.engine.inputs import PredictionSet
from app.fairness.engine.intervals import centred, percentile
from app.fairness.engine.kernel import ColumnPlan, GroupArrays, plan_column, point_block
from app.fairness.engine.resample import Clusters
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
HIGHER_IS_BETTER = frozenset({"auc", "worst_group_auc"})
# Verdict basis per attribute: every compared gap except demographic parity, which is no target when
# prevalence differs between groups (an ideal classifier then has a demographic-parity gap).
VERDICT_METRICS = tuple(m for m in COMPARED_GAPS if m != "demographic_parity_difference")
BETTER, WORSE, MIXED, NOISE = "better", "worse", "mixed", "not distinguishable from noise"


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


DIFFERENCE_RANGE = (-1.0, 1.0)  # a difference of two gaps


def sample_costs(predictions: PredictionSet) -> np.ndarray | None:
    """Each sample's compute under the served policy (fraction of the model's full network); None
    when the policy uses exits whose costs are unknown."""
    n = len(predictions.y_true)
    if predictions.exit_index is None:
        return np.ones(n)
    if predictions.exit_cost is None:
        return None
    return np.asarray(predictions.exit_cost, dtype=np.float64)[np.asarray(predictions.exit_index, dtype=np.int64)]


def _compute_difference(
    model: np.ndarray, reference: np.ndarray, samples: np.ndarray | None, confidence: float
) -> dict:
    diff = float(model.mean() - reference.mean())
    low = high = p = None
    if samples is not None and len(samples):
        lo, hi = percentile(samples[:, None], confidence)
        low, high = num(lo[0]), num(hi[0])
        p = num(bootstrap_wald(np.array([diff]), samples[:, None])[1][0])
    return {
        "value_model": float(model.mean()),
        "value_reference": float(reference.mean()),
        "difference": diff,
        "ci_low": low,
        "ci_high": high,
        "p_value": p,
    }


def verdicts(rows: list[dict], alpha: float) -> list[dict]:
    """A plain verdict per attribute from the Holm-adjusted p of its differences and their sign.

    A difference counts when its Holm-adjusted p is below ``alpha``; it is an improvement when it
    moves the right way (a lower gap, a higher AUC or worst-group AUC). The attribute's verdict is
    ``better`` when at least one difference improves and none worsens, ``worse`` the reverse,
    ``mixed`` when both happen, and ``not distinguishable from noise`` when none counts. Basis: AUC
    for "overall", ``VERDICT_METRICS`` for attributes and the intersection. Each row gets its own
    ``verdict`` too (``None`` for a metric outside the basis).
    """
    out: dict[str, dict] = {}
    for row in rows:
        attribute, metric = row["attribute"], row["metric"]
        basis = ("auc",) if attribute == "overall" else VERDICT_METRICS
        entry = out.setdefault(attribute, {"attribute": attribute, "verdict": NOISE, "better": [], "worse": []})
        row["verdict"] = NOISE if metric in basis else None
        if metric not in basis or row["p_holm"] is None or row["p_holm"] >= alpha or not row["difference"]:
            continue
        improves = (row["difference"] > 0) == (metric in HIGHER_IS_BETTER)
        row["verdict"] = BETTER if improves else WORSE
        entry["better" if improves else "worse"].append(metric)
    for entry in out.values():
        if entry["better"] or entry["worse"]:
            entry["verdict"] = MIXED if entry["better"] and entry["worse"] else BETTER if entry["better"] else WORSE
    return list(out.values())


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
    clusters = None
    if reference.clusters is not None:
        clusters = Clusters.build(
            np.asarray(reference.clusters, dtype=object)[index[0]], design.strata_bounds, design.order
        )
    y_int = y[design.order]
    plans = [
        plan_column(s[design.order], y_int, design, p.threshold_in(idx[design.order]))
        for s, p, idx in zip(policies, sets, index, strict=True)
    ]
    points = [headline(plan, point_block(plan), min_count) for plan in plans]
    boots = (
        [
            headline(plan, b, min_count)
            for plan, b in zip(plans, run_bootstrap(design, plans, n_boot, seed, clusters=clusters), strict=True)
        ]
        if n_boot > 0
        else None
    )
    costs = [sample_costs(p) for p in sets]
    known = [c is not None for c in costs]
    per_model = [c[idx][design.order] for c, idx in zip(costs, index, strict=True) if c is not None]
    cost_matrix = np.stack(per_model) if per_model else np.empty((0, len(y)))
    cost_boot = (
        bootstrap_means(design, cost_matrix, n_boot, seed, clusters=clusters) if n_boot > 0 and per_model else None
    )
    cost_row = np.cumsum(known) - 1  # model -> its row of cost_matrix (when known)
    alpha = 1.0 - confidence

    comparisons = []
    for m in range(1, len(names)):
        keys = list(points[0])
        rows = []
        for key in keys:
            diff = points[m][key][0] - points[0][key][0]
            low = high = p = np.nan
            if boots is not None and np.isfinite(diff):
                samples = boots[m][key] - boots[0][key]
                if key[0] == "overall":
                    lo, hi = percentile(samples[:, None], confidence)
                else:
                    lo, hi = centred(samples[:, None], np.array([diff]), confidence, DIFFERENCE_RANGE)
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
        compute = None
        if known[0] and known[m]:
            compute = _compute_difference(
                cost_matrix[cost_row[m]],
                cost_matrix[cost_row[0]],
                None if cost_boot is None else cost_boot[:, cost_row[m]] - cost_boot[:, cost_row[0]],
                confidence,
            )
        comparisons.append(
            {
                "model": names[m],
                "reference": names[0],
                "differences": rows,
                "compute": compute,
                "verdicts": verdicts(rows, alpha),
            }
        )

    return {
        "metric_definition_version": METRIC_DEFINITION_VERSION,
        "config": {
            **run_config(attributes, intersections, n_boot, seed, min_count, confidence),
            **({} if clusters is None else {"n_clusters": int(clusters.bounds[-1])}),
        },
        "reference": names[0],
        "models": names,
        "n_matched": n_matched,
        "n_unmatched": {name: len(p.y_true) - n_matched for name, p in zip(names, sets, strict=True)},
        "comparisons": comparisons,
    }
