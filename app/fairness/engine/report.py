"""The fairness report: ``build_report`` (a JSON-serialisable dict) and ``metric_rows`` (flat rows).

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

from collections.abc import Iterator

import numpy as np

from app.fairness.engine.bootstrap import run_bootstrap
from app.fairness.engine.evaluate import METRICS, Options, evaluate_column, num
from app.fairness.engine.exits import exit_summary
from app.fairness.engine.folds import MAX_FOLDS, annotate_folds
from app.fairness.engine.groups import Design, Intersections, build_design, resolve_intersections
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


def build_report(
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
        "exits": _exits(predictions, design, min_count, confidence),
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


def _exits(predictions: PredictionSet, design: Design, min_count: int, confidence: float) -> dict | None:
    if predictions.exit_index is None:
        return None
    exit_index = np.asarray(predictions.exit_index, dtype=np.int64)[design.order]
    cost = None if predictions.exit_cost is None else np.asarray(predictions.exit_cost, dtype=np.float64)
    return {
        "n_exits": predictions.n_exits,
        "exit_cost": None if cost is None else [float(c) for c in cost],
        "groupings": [
            {
                "attribute": g.attribute,
                "kind": g.kind,
                "groups": [
                    {"group": label, **entry}
                    for label, entry in zip(
                        g.labels,
                        exit_summary(
                            exit_index,
                            cost,
                            g.codes,
                            g.n_groups,
                            predictions.n_exits,
                            min_count=min_count,
                            confidence=confidence,
                        ),
                        strict=True,
                    )
                ],
            }
            for g in design.groupings
        ],
    }


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


def _row(attribute: str, group: str, exit_key: object, metric: str, value: dict | float | None, n) -> dict:
    if isinstance(value, dict):
        return {
            "attribute": attribute,
            "group": group,
            "exit": str(exit_key),
            "metric": metric,
            "value": value.get("value"),
            "ci_low": value.get("ci_low"),
            "ci_high": value.get("ci_high"),
            "status": value.get("status", "ok"),
            "n": n if n is not None else value.get("n"),
        }
    return {
        "attribute": attribute,
        "group": group,
        "exit": str(exit_key),
        "metric": metric,
        "value": num(value),
        "ci_low": None,
        "ci_high": None,
        "status": "ok" if num(value) is not None else "undefined",
        "n": n,
    }


def metric_rows(report: dict) -> Iterator[dict]:
    """Flat rows (attribute, group, exit, metric, value, ci_low, ci_high, status, n) for storage.

    ``exit`` is a string ("0".."k" or "policy"); gaps and Fairlearn's differences use group "*".
    """
    for evaluation in report["evaluations"]:
        exit_key = evaluation["exit"]
        for grouping in evaluation["groupings"]:
            attribute = grouping["attribute"]
            for group in grouping["groups"]:
                label = group["group"]
                for count in ("n", "n_pos", "n_neg"):
                    yield _row(attribute, label, exit_key, count, float(group[count]), group["n"])
                for metric in METRICS:
                    yield _row(attribute, label, exit_key, metric, group["metrics"][metric], None)
            for name, gap in grouping.get("gaps", {}).items():
                yield _row(attribute, "*", exit_key, name, gap, len(gap["groups_used"]))
            for family, tests in grouping.get("tests", {}).items():
                for test in tests:
                    p = test["p_holm"]
                    yield _row(attribute, test["group"], exit_key, f"p_holm.{family}", p, None)
            fairlearn = grouping.get("fairlearn")
            if fairlearn:
                for label, rates in fairlearn["by_group"].items():
                    for rate, value in rates.items():
                        yield _row(attribute, label, exit_key, f"fairlearn.{rate}", value, None)
                for method in ("between_groups", "to_overall"):
                    for name, value in fairlearn[method].items():
                        yield _row(attribute, "*", exit_key, f"fairlearn.{name}.{method}", value, None)
    exits = report.get("exits")
    if exits:
        for grouping in exits["groupings"]:
            for group in grouping["groups"]:
                for e, rate in enumerate(group["exit_rates"]):
                    yield _row(grouping["attribute"], group["group"], e, "exit_rate", rate, None)
                if group["mean_compute"] is not None:
                    compute = group["mean_compute"]
                    yield _row(grouping["attribute"], group["group"], "policy", "mean_compute", compute, None)
