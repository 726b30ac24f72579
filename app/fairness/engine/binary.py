"""The binary fairness report (``build_binary_report``, a JSON-serialisable dict); ``report.build_report``
dispatches to it, and ``report.metric_rows`` flattens it.

Report structure (``METRIC_DEFINITION_VERSION`` names the definitions; NaN is never emitted, a value
that does not exist is ``null`` with a status saying why)::

    {
      "metric_definition_version": str,
      "config": {"attributes": [str], "intersections": [[str]], "n_boot": int, "seed": int,
                 "min_count": int, "confidence": float,
                 "n_clusters": int,      # only with PredictionSet.clusters
                 "alpha": float, "threshold": float, "ece_bins": 10, "definitions": {name: str},
                 "folds": [str]},        # only with PredictionSet.folds: the fold labels
      "population": {"n": int, "n_pos": int, "n_neg": int, "n_exits": int},
      "groupings": [{"attribute": str, "kind": "overall"|"attribute"|"intersection",
                     "groups": [str], "n_missing": int}],
      "evaluations": [                      # each exit (multi-exit models), then "policy"
        {"exit": int | "policy",
         "groupings": [
           {"attribute": str,               # "overall", an attribute, or "a×b" (intersection)
            "kind": str, "n_missing": int,  # samples whose value is missing (in no group)
            "groups": [{"group": str, "levels": {attribute: value}, "n": int, "n_pos": int,
                        "n_neg": int,
                        "metrics": {metric: Value}}],   # metric in METRICS (below)
            # the rest only for attributes and the intersection, not for "overall":
            "gaps": {gap: Value & {"p_value": float|null, "groups_used": [str],
                                   "left_out": [{"group": str, "status": str}]}},
            "tests": {"tpr"|"fpr"|"selection_rate"|"pf":
                      [{"group": str, "difference": float|null, "statistic": float|null,
                        "p_value": float|null, "p_holm": float|null}]},
            "fairlearn": {"by_group": {group: {rate: float}}, "overall": {rate: float},
                          "between_groups": {name: float|null}, "to_overall": {name: float|null}},
            # policy evaluation only:
            "curves": {"roc": {group: {"fpr": [float], "tpr": [float]} | null},
                       "reliability": {group: [{"bin": int, "count": int, "mean_score": float,
                                                "observed": float}]}}}]}],
      "exits": null | {"n_exits": int, "exit_cost": [float] | null,
                       "groupings": [{"attribute": str, "kind": str,
                                      "groups": [{"group": str, "n": int,
                                                  "exit_rates": [Value],     # one per exit
                                                  "mean_compute": Value | null}]}]},
      "summary": {"exit": "policy", "alpha": float, "verdict": str,
                  "largest_significant_gap": Finding | null,  # attributes before the intersection
                  "findings": [Finding],
                  "overall": {metric: Value}}
    }

    Value   = {"value": float|null, "ci_low": float|null, "ci_high": float|null,
               "status": "ok"|"undefined"|"insufficient", "n": int}   # n: the status denominator
    Finding = {"attribute": str, "kind": str, "gap": str, "value": float, "ci_low": float|null,
               "ci_high": float|null, "p_value": float|null, "significant": bool,
               "left_out": [{"group": str, "status": str}]}   # named in the verdict too
    Folds   = {"mean": float|null, "sd": float|null, "n": int,    # only with PredictionSet.folds: on
               "skipped": [{"fold": str, "status": str}]}         # auc/pf/tpr/fpr Values and gaps

Metrics per group: prevalence, auc (within the group), pf, tpr, fpr, tnr, fnr, ppv, npv, accuracy,
selection_rate, ece, brier. Rates have Wilson intervals; auc, pf, ece and brier have percentile
intervals from the stratified (with ``clusters``: patient-clustered) bootstrap; every gap has the
interval of ``intervals.centred``, on its estimate. Gaps: pfd, auc_gap, worst_group_auc, eopp1,
eopp0, eodd, demographic_parity_difference/_ratio, equalized_odds_difference/_ratio,
equal_opportunity_difference/_ratio (see ``gaps.py``); ``fairlearn`` holds Fairlearn's own values.
A gap's ``p_value`` is the smallest Holm-adjusted p of its group-vs-rest tests (PF for pfd, TPR for
eopp1 and equal opportunity, FPR for eopp0, selection rate for demographic parity, TPR and FPR
together for eodd and equalized odds; null for auc_gap and worst_group_auc), see ``significance.py``.
"""

from __future__ import annotations

import numpy as np

from app.fairness.engine.bootstrap import run_bootstrap
from app.fairness.engine.evaluate import Options, evaluate_column
from app.fairness.engine.exits import exits_block
from app.fairness.engine.folds import MAX_FOLDS, annotate_folds
from app.fairness.engine.groups import Intersections, build_design, resolve_intersections
from app.fairness.engine.inputs import PredictionSet
from app.fairness.engine.kernel import N_BINS, plan_column, point_block
from app.fairness.engine.resample import Clusters

METRIC_DEFINITION_VERSION = "1.1"  # 1.1: gap intervals centred on the estimate

SUMMARY_GAPS = ("pfd", "eopp1", "eopp0", "eodd")

DEFINITIONS = {
    "pf": "AUC of the group's positives against all negatives of the population (ties 1/2)",
    "eodd": "max over pairs of groups of |dTPR + dFPR| / 2 = (max(TPR+FPR) - min(TPR+FPR)) / 2",
    "status": "undefined: empty denominator; insufficient: denominator below min_count",
    "gaps": "computed over groups that are ok for every metric the gap uses",
    "bootstrap": "resampling within finest cell x label strata, of patients when clusters are given (a "
    "patient's stratum is its first sample's); percentile intervals for group metrics",
    "gap_intervals": "estimate +/- the larger distance to either percentile limit, widened away from the "
    "bootstrap bias (contains the estimate)",
    "folds": "across-fold mean and sd of per-fold values; a fold enters when it meets min_count",
    "tests": "group vs rest: two-proportion z (TPR, FPR, selection rate), bootstrap-SE Wald (PF); "
    "Holm within an attribute and metric",
    "ece": "sum over 10 equal-width bins of |sum(score - label)| / n",
}


def validate(predictions: PredictionSet) -> np.ndarray:
    """Check labels, scores and exits; return y as int64."""
    y = np.asarray(predictions.y_true)
    if len(y) == 0:
        raise ValueError("no predictions")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must be 0/1")
    scores = np.asarray(predictions.exit_scores, dtype=np.float64)
    if not np.isfinite(scores).all() or scores.min() < 0 or scores.max() > 1:
        raise ValueError("exit_scores must be probabilities in [0, 1]")
    if not np.isfinite(np.asarray(predictions.threshold, dtype=np.float64)).all():
        raise ValueError("threshold must be finite")
    if predictions.exit_index is not None:
        idx = np.asarray(predictions.exit_index)
        if idx.min() < 0 or idx.max() >= predictions.n_exits:
            raise ValueError("exit_index out of range")
    return y.astype(np.int64)


def score_columns(predictions: PredictionSet) -> tuple[list[np.ndarray], list[tuple[int | str, int]]]:
    """Distinct score columns and, per evaluation key (exit index or "policy"), its column."""
    scores = np.asarray(predictions.exit_scores, dtype=np.float64)
    if predictions.n_exits == 1:
        return [scores[:, 0]], [("policy", 0)]
    columns = [scores[:, e] for e in range(predictions.n_exits)]
    keys: list[tuple[int | str, int]] = [(e, e) for e in range(predictions.n_exits)]
    if predictions.exit_index is None:
        keys.append(("policy", predictions.n_exits - 1))
    else:
        columns.append(np.asarray(predictions.policy_scores, dtype=np.float64))
        keys.append(("policy", len(columns) - 1))
    return columns, keys


def threshold_config(predictions: PredictionSet) -> dict:
    """The report's ``threshold``: the float, or with per-sample thresholds (a study's fold models')
    their median, flagged ``threshold_per_sample``, with their range."""
    if not predictions.per_sample_threshold:
        return {"threshold": float(predictions.threshold)}
    values = np.asarray(predictions.threshold, dtype=np.float64)
    return {
        "threshold": float(np.median(values)),
        "threshold_per_sample": True,
        "threshold_range": [float(values.min()), float(values.max())],
    }


def run_config(
    attributes: list[str], intersections: Intersections, n_boot: int, seed: int, min_count: int, confidence: float
) -> dict:
    """The settings a report or comparison was computed with, recorded beside its numbers (the
    intersections as the attribute lists they resolve to)."""
    return {
        "attributes": list(attributes),
        "intersections": resolve_intersections(attributes, intersections),
        "n_boot": n_boot,
        "seed": seed,
        "min_count": min_count,
        "confidence": confidence,
    }


def build_binary_report(
    predictions: PredictionSet,
    *,
    attributes: list[str],
    intersections: Intersections = True,
    n_boot: int = 1000,
    seed: int = 0,
    min_count: int = 10,
    confidence: float = 0.95,
) -> dict:
    """Per-group metrics, gaps, tests, exit behaviour and a verdict, with intervals and statuses."""
    if not 0 < confidence < 1:
        raise ValueError("confidence must be in (0, 1)")
    if n_boot < 0 or min_count < 1:
        raise ValueError("n_boot must be >= 0 and min_count >= 1")
    y = validate(predictions)
    columns, keys = score_columns(predictions)
    design = build_design(y, predictions.groups, attributes, intersections=intersections, sort_by=columns[keys[-1][1]])
    y_int = y[design.order]
    columns = [c[design.order] for c in columns]
    threshold = predictions.threshold_in(design.order)
    plans = [plan_column(c, y_int, design, threshold, N_BINS) for c in columns]
    points = [point_block(p, N_BINS) for p in plans]
    clusters = None
    if predictions.clusters is not None:
        clusters = Clusters.build(predictions.clusters, design.strata_bounds, design.order)
    boots = run_bootstrap(design, plans, n_boot, seed, clusters=clusters) if n_boot > 0 else [None] * len(plans)
    options = Options(min_count=min_count, confidence=confidence)
    folds = fold_codes(predictions.folds, design.order)

    evaluations = []
    for key, c in keys:
        curves = (y_int, columns[c]) if key == "policy" else None
        groupings = evaluate_column(plans[c], points[c], boots[c], options, curves_from=curves)
        if folds is not None:
            annotate_folds(groupings, plans[c], y_int, folds[0], folds[1], min_count)
        evaluations.append({"exit": key, "groupings": groupings})

    report = {
        "metric_definition_version": METRIC_DEFINITION_VERSION,
        "config": {
            **run_config(attributes, intersections, n_boot, seed, min_count, confidence),
            **({} if clusters is None else {"n_clusters": int(clusters.bounds[-1])}),
            "alpha": round(1.0 - confidence, 10),
            **threshold_config(predictions),
            "ece_bins": N_BINS,
            "definitions": DEFINITIONS,
            **({} if folds is None else {"folds": list(folds[1])}),
        },
        "population": {
            "n": len(y),
            "n_pos": int(y.sum()),
            "n_neg": int(len(y) - y.sum()),
            "n_exits": predictions.n_exits,
        },
        "groupings": [
            {"attribute": g.attribute, "kind": g.kind, "groups": list(g.labels), "n_missing": g.n_missing}
            for g in design.groupings
        ],
        "evaluations": evaluations,
        "exits": exits_block(predictions, design, min_count, confidence),
    }
    report["summary"] = summarise(evaluations[-1], 1.0 - confidence)
    return report


def fold_codes(folds: np.ndarray | None, order: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]] | None:
    """Fold labels as codes in internal order, and the sorted labels; None without folds."""
    if folds is None:
        return None
    raw = np.asarray(folds, dtype=object)
    if any(f is None for f in raw):
        raise ValueError("folds must label every sample")
    labels, codes = np.unique(np.array([str(f) for f in raw], dtype=object), return_inverse=True)
    if len(labels) > MAX_FOLDS:
        raise ValueError(f"at most {MAX_FOLDS} fold labels")
    return codes.reshape(-1)[order].astype(np.int64), tuple(str(label) for label in labels)


def summarise(evaluation: dict, alpha: float) -> dict:
    """Verdict first: the largest gap whose Holm-adjusted group-vs-rest test is significant.

    Single attributes are ranked before the intersection (whose max − min over many small cells is
    larger almost by construction); the intersection's largest significant gap is named as well.
    """
    findings = []
    for grouping in evaluation["groupings"]:
        for name in SUMMARY_GAPS:
            gap = grouping.get("gaps", {}).get(name)
            if gap is None or gap["status"] != "ok":
                continue
            p = gap["p_value"]
            findings.append(
                {
                    "attribute": grouping["attribute"],
                    "kind": grouping["kind"],
                    "gap": name,
                    "value": gap["value"],
                    "ci_low": gap["ci_low"],
                    "ci_high": gap["ci_high"],
                    "p_value": p,
                    "significant": p is not None and p < alpha,
                    "left_out": gap["left_out"],
                }
            )
    findings.sort(key=lambda f: (not f["significant"], f["kind"] != "attribute", -f["value"]))
    significant = [f for f in findings if f["significant"]]
    largest = next((f for f in significant if f["kind"] == "attribute"), None)
    intersection = next((f for f in significant if f["kind"] == "intersection"), None)
    overall = evaluation["groupings"][0]["groups"][0]["metrics"]
    return {
        "exit": evaluation["exit"],
        "alpha": alpha,
        "verdict": _verdict(largest, intersection, findings, alpha),
        "largest_significant_gap": largest or intersection,
        "findings": findings,
        "overall": {m: overall[m] for m in ("auc", "tpr", "fpr", "ppv", "ece", "brier")},
    }


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def left_out_note(left_out: list[dict]) -> str:
    """ " (IV, V, VI left out: insufficient)": the groups a gap could not use, by status; "" if none.

    A gap over the groups that remain can look small exactly because the groups at risk were too
    small to enter it, so every sentence that states a gap says which groups it leaves out.
    """
    by_status: dict[str, list[str]] = {}
    for entry in left_out:
        by_status.setdefault(entry["status"], []).append(entry["group"])
    if not by_status:
        return ""
    return " (" + "; ".join(f"{', '.join(groups)} left out: {status}" for status, groups in by_status.items()) + ")"


def _describe(f: dict) -> str:
    return (
        f"{f['gap']} = {_fmt(f['value'])} (CI {_fmt(f['ci_low'])} to {_fmt(f['ci_high'])}) across "
        f"{f['attribute']}{left_out_note(f['left_out'])}; Holm-adjusted p = {f['p_value']:.2g}"
    )


def _verdict(largest: dict | None, intersection: dict | None, findings: list[dict], alpha: float) -> str:
    if largest is not None:
        text = f"Largest significant gap: {_describe(largest)}."
        if intersection is not None:
            text += f" In the intersection: {_describe(intersection)}."
        return text
    if intersection is not None:
        return f"No single attribute shows a significant gap; in the intersection: {_describe(intersection)}."
    if not findings:
        return "No gap could be computed: no attribute has two groups with enough cases."
    top = max(findings, key=lambda f: f["value"])
    return (
        f"No group differs significantly from the rest at alpha = {alpha:.2g} after Holm adjustment; "
        f"largest observed gap: {top['gap']} = {_fmt(top['value'])} across {top['attribute']}"
        f"{left_out_note(top['left_out'])}."
    )
