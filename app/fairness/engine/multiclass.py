"""The multi-class report (docs/metrics.md, "Multi-class and multi-label tasks").

Per exit and the policy, per grouping (overall, attributes, intersections) and group: accuracy,
balanced accuracy, macro precision/recall/F1 and the confusion matrix; per class × group the
one-vs-rest TPR, FPR, TNR, PPV, F1, AUC and PF with statuses; per attribute the paper's Eopp0,
Eopp1 and Eodd (per-class gaps averaged over the classes where they are defined, with the paper's
own convention beside them), the gaps of the group metrics, the paper's "Avg", per-class gaps and a
Fairlearn block per class. Intervals: Wilson for rates, the bootstrap stratified by cell × true
class (patient-clustered with ``clusters``) for everything else; gaps get ``intervals.centred``.
Structure: ``app.fairness.report_schema.MulticlassReport``; ``docs/report-format.md`` explains it.
"""

from __future__ import annotations

import numpy as np

from app.fairness.engine.binary import METRIC_DEFINITION_VERSION, fold_codes, left_out_note, run_config
from app.fairness.engine.class_folds import annotate_class_folds
from app.fairness.engine.class_gaps import class_mean_gap, group_gap_entries, per_class_gaps
from app.fairness.engine.class_kernel import (
    ClassArrays,
    ClassPlan,
    bootstrap_classes,
    confusion,
    plan_classes,
    point_classes,
)
from app.fairness.engine.class_validate import validate_multiclass
from app.fairness.engine.evaluate import MetricTable, Options, fairlearn_entry, num
from app.fairness.engine.exits import exits_block
from app.fairness.engine.groups import Intersections, build_design
from app.fairness.engine.inputs import MulticlassPredictionSet
from app.fairness.engine.intervals import percentile, wilson
from app.fairness.engine.resample import Clusters
from app.fairness.engine.status import INSUFFICIENT, OK, UNDEFINED, status_of

SUMMARY_GAPS = ("eopp1", "eopp0", "eodd", "macro_f1_diff")
GROUP_VALUES = ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1")
AVERAGED = ("macro_precision", "macro_recall", "macro_f1")

DEFINITIONS = {
    "decision": "y_pred = argmax of the probabilities, or of p / class threshold when class thresholds are set",
    "one_vs_rest": "class c against the rest within a group: c's samples are the positives, y_pred == c the "
    "positive decisions; pf: the group's c-samples against every non-c sample of the population",
    "macro": 'sklearn average="macro" with labels = the classes whose true samples are in the group (a class '
    "never predicted has precision 0); balanced accuracy = macro recall",
    "eopp_eodd": "per class over the groups ok for it: two groups |difference|, more max - min (eodd: (max - min "
    "of TPR_c + FPR_c) / 2); then the mean over the classes where it is defined (>= 2 ok groups); "
    "classes_left_out names the others (an extension of the paper's two-group form)",
    "paper_value": "the fair multi-exit paper's code: an empty denominator gives a rate of 0; every group "
    "and every class enter",
    "status": "undefined: empty denominator; insufficient: denominator below min_count (tpr and f1: the "
    "class's samples in the group; fpr, tnr: the others; ppv: the predictions of the class; auc: the smaller "
    "of both; accuracy and the macro metrics: the group's size)",
    "bootstrap": "resampling within finest cell x true class strata, of patients when clusters are given; "
    "percentile intervals for f1, auc, pf and the macro metrics, Wilson for rates",
    "gap_intervals": "estimate +/- the larger distance to either percentile limit, widened away from the "
    "bootstrap bias (contains the estimate)",
    "averages": 'the paper\'s "Avg": the mean over the groups ok for the metric',
    "verdict": "the largest gap whose interval lies above 0, single attributes before the intersection",
}


def evaluation_probs(predictions: MulticlassPredictionSet, probs: np.ndarray) -> list[tuple[int | str, np.ndarray]]:
    """Per evaluation key (each exit of a multi-exit model, then "policy"), its ``(n, K)`` probabilities."""
    if predictions.n_exits == 1:
        return [("policy", probs[:, 0, :])]
    keyed: list[tuple[int | str, np.ndarray]] = [(e, probs[:, e, :]) for e in range(predictions.n_exits)]
    if predictions.exit_index is None:
        return [*keyed, ("policy", probs[:, -1, :])]
    chosen = probs[np.arange(len(probs)), np.asarray(predictions.exit_index, dtype=np.int64), :]
    return [*keyed, ("policy", chosen)]


def build_multiclass_report(
    predictions: MulticlassPredictionSet,
    *,
    attributes: list[str],
    intersections: Intersections = True,
    n_boot: int = 1000,
    seed: int = 0,
    min_count: int = 10,
    confidence: float = 0.95,
) -> dict:
    """The ``MulticlassReport`` of ``predictions`` (see the module docstring)."""
    if not 0 < confidence < 1:
        raise ValueError("confidence must be in (0, 1)")
    if n_boot < 0 or min_count < 1:
        raise ValueError("n_boot must be >= 0 and min_count >= 1")
    y, probs = validate_multiclass(predictions)
    k = len(predictions.classes)
    keyed = evaluation_probs(predictions, probs)
    decisions = [predictions.predicted(p) for _, p in keyed]
    design = build_design(
        y, predictions.groups, attributes, intersections=intersections, sort_by=decisions[-1], n_labels=k
    )
    order = design.order
    y_int = y[order]
    preds = [d[order] for d in decisions]
    plans = [plan_classes(p[order], y_int, pred, design) for (_, p), pred in zip(keyed, preds, strict=True)]
    clusters = None
    if predictions.clusters is not None:
        clusters = Clusters.build(predictions.clusters, design.strata_bounds, order)
    boots: list[dict[str, ClassArrays] | None] = [None] * len(plans)
    if n_boot > 0:
        boots = list(bootstrap_classes(design, plans, n_boot, seed, clusters=clusters))
    options = Options(min_count=min_count, confidence=confidence)
    folds = fold_codes(predictions.folds, order)
    evaluations = []
    for (key, _), plan, pred, boot in zip(keyed, plans, preds, boots, strict=True):
        groupings = evaluate_classes(plan, boot, options, y_int, pred, predictions.classes)
        if folds is not None:
            annotate_class_folds(groupings, plan, folds[0], folds[1], predictions.classes, min_count)
        evaluations.append({"exit": key, "groupings": groupings})

    thresholds = predictions.class_thresholds
    report = {
        "task": "multiclass",
        "metric_definition_version": METRIC_DEFINITION_VERSION,
        "classes": list(predictions.classes),
        "config": {
            **run_config(attributes, intersections, n_boot, seed, min_count, confidence),
            **({} if clusters is None else {"n_clusters": int(clusters.bounds[-1])}),
            "alpha": round(1.0 - confidence, 10),
            "decision": "argmax" if thresholds is None else "argmax of p / class threshold",
            "class_thresholds": None if thresholds is None else [float(t) for t in thresholds],
            "definitions": DEFINITIONS,
            **({} if folds is None else {"folds": list(folds[1])}),
        },
        "population": {
            "n": len(y),
            "n_exits": predictions.n_exits,
            "class_counts": {
                name: int(count) for name, count in zip(predictions.classes, np.bincount(y, minlength=k), strict=True)
            },
        },
        "groupings": [
            {"attribute": g.attribute, "kind": g.kind, "groups": list(g.labels), "n_missing": g.n_missing}
            for g in design.groupings
        ],
        "evaluations": evaluations,
        "exits": exits_block(predictions, design, min_count, confidence),
    }
    report["summary"] = summarise(evaluations[-1])
    return report


def _rate(x: np.ndarray, n: np.ndarray, s: Options) -> MetricTable:
    """A proportion with its Wilson interval and the status of its denominator."""
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(n > 0, x / np.maximum(n, 1), np.nan)
    low, high = wilson(x, n, s.confidence)
    return MetricTable(value, low, high, status_of(n, s.min_count), np.asarray(n))


def _booted(point: np.ndarray, boot: np.ndarray | None, den: np.ndarray, s: Options) -> MetricTable:
    """A bootstrap statistic with its percentile interval and the status of ``den``."""
    if boot is not None and len(boot):
        low, high = percentile(boot, s.confidence)
    else:
        low = high = np.full(point.shape, np.nan)
    return MetricTable(point, low, high, status_of(den, s.min_count), np.asarray(den))


def class_tables(point: ClassArrays, boot: ClassArrays | None, n_neg_total: np.ndarray, s: Options) -> dict:
    """``(n_groups, K)`` tables of every one-vs-rest metric."""
    tp = np.rint(point["tp"][0]).astype(np.int64)
    n_true = np.rint(point["n_true"][0]).astype(np.int64)
    n_pred = np.rint(point["n_pred"][0]).astype(np.int64)
    n_neg = n_true.sum(axis=1, keepdims=True) - n_true
    fp = n_pred - tp

    def b(metric: str) -> np.ndarray | None:
        return None if boot is None else boot[metric]

    return {
        "tpr": _rate(tp, n_true, s),
        "fpr": _rate(fp, n_neg, s),
        "tnr": _rate(n_neg - fp, n_neg, s),
        "ppv": _rate(tp, n_pred, s),
        "f1": _booted(point["f1"][0], b("f1"), n_true, s),
        "auc": _booted(point["auc"][0], b("auc"), np.minimum(n_true, n_neg), s),
        "pf": _booted(point["pf"][0], b("pf"), np.minimum(n_true, n_neg_total[None, :]), s),
    }


def group_tables(point: ClassArrays, boot: ClassArrays | None, s: Options) -> dict[str, MetricTable]:
    """``(n_groups,)`` tables of accuracy (Wilson) and the macro metrics (bootstrap)."""
    tp = np.rint(point["tp"][0]).astype(np.int64)
    n = np.rint(point["n"][0]).astype(np.int64)
    tables = {"accuracy": _rate(tp.sum(axis=1), n, s)}
    for metric in GROUP_VALUES[1:]:
        tables[metric] = _booted(point[metric][0], None if boot is None else boot[metric], n, s)
    return tables


def evaluate_classes(
    plan: ClassPlan,
    boot: dict[str, ClassArrays] | None,
    s: Options,
    y: np.ndarray,
    pred: np.ndarray,
    classes: tuple[str, ...],
) -> list[dict]:
    """The ``groupings`` list of one evaluation (``y`` and ``pred`` in internal order)."""
    k = plan.n_classes
    point = point_classes(plan)
    overall_true = np.rint(point["overall"]["n_true"][0, 0]).astype(np.int64)
    n_neg_total = overall_true.sum() - overall_true
    out = []
    for gp in plan.groupings:
        g = gp.grouping
        pt, bt = point[g.attribute], None if boot is None else boot[g.attribute]
        per_class = class_tables(pt, bt, n_neg_total, s)
        per_group = group_tables(pt, bt, s)
        matrices = confusion(y, pred, g.codes, g.n_groups, k)
        n_true = np.rint(pt["n_true"][0]).astype(np.int64)
        entry: dict = {
            "attribute": g.attribute,
            "kind": g.kind,
            "n_missing": g.n_missing,
            "groups": [
                {
                    "group": label,
                    "levels": g.levels[j],
                    "n": int(n_true[j].sum()),
                    "class_counts": [int(c) for c in n_true[j]],
                    "metrics": {m: per_group[m].entry(j) for m in GROUP_VALUES},
                    "per_class": {
                        name: {
                            "n_pos": int(n_true[j, c]),
                            "n_neg": int(n_true[j].sum() - n_true[j, c]),
                            **{m: _class_entry(per_class[m], j, c) for m in per_class},
                        }
                        for c, name in enumerate(classes)
                    },
                    "confusion": matrices[j].tolist(),
                }
                for j, label in enumerate(g.labels)
            ],
        }
        if g.kind != "overall":
            statuses = {m: per_class[m].status for m in ("tpr", "fpr", "tnr", "auc", "pf")}
            group_statuses = {m: per_group[m].status for m in GROUP_VALUES}
            entry["gaps"] = {
                **{
                    name: class_mean_gap(name, classes, g.labels, statuses, pt, bt, s.confidence)
                    for name in ("eopp0", "eopp1", "eodd")
                },
                **group_gap_entries(g.labels, group_statuses, pt, bt, s.confidence),
            }
            entry["averages"] = {
                m: _average(per_group[m], pt[m][0], None if bt is None else bt[m], s) for m in AVERAGED
            }
            if g.kind == "attribute":
                entry["per_class_gaps"] = per_class_gaps(classes, g.labels, statuses, pt, bt, s.confidence)
                tp = np.rint(pt["tp"][0]).astype(np.int64)
                fp = np.rint(pt["n_pred"][0]).astype(np.int64) - tp
                n_neg = n_true.sum(axis=1, keepdims=True) - n_true
                entry["fairlearn"] = {
                    name: fairlearn_entry(g.labels, tp[:, c], fp[:, c], n_true[:, c], n_neg[:, c])
                    for c, name in enumerate(classes)
                }
        out.append(entry)
    return out


def _class_entry(table: MetricTable, group: int, cls: int) -> dict:
    return MetricTable(
        table.value[group], table.low[group], table.high[group], table.status[group], table.n[group]
    ).entry(cls)


def _average(table: MetricTable, point: np.ndarray, boot: np.ndarray | None, s: Options) -> dict:
    """The mean of a group metric over the groups ok for it, with a percentile interval."""
    used = table.status == OK
    if not used.any():
        status = INSUFFICIENT if (table.status != UNDEFINED).any() else UNDEFINED
        return {"value": None, "ci_low": None, "ci_high": None, "status": status, "n": 0}
    low = high = None
    if boot is not None and len(boot):
        lo, hi = percentile(boot[:, used].mean(axis=1)[:, None], s.confidence)
        low, high = num(lo[0]), num(hi[0])
    return {"value": num(point[used].mean()), "ci_low": low, "ci_high": high, "status": OK, "n": int(used.sum())}


def summarise(evaluation: dict) -> dict:
    """Verdict first: the largest gap whose interval lies above 0 (single attributes before the
    intersection, whose max − min over many small cells is larger almost by construction)."""
    findings = []
    for grouping in evaluation["groupings"]:
        for name in SUMMARY_GAPS:
            gap = grouping.get("gaps", {}).get(name)
            if gap is None or gap["status"] != OK:
                continue
            findings.append(
                {
                    "attribute": grouping["attribute"],
                    "kind": grouping["kind"],
                    "gap": name,
                    "value": gap["value"],
                    "ci_low": gap["ci_low"],
                    "ci_high": gap["ci_high"],
                    "excludes_zero": gap["ci_low"] is not None and gap["ci_low"] > 0,
                }
            )
    findings.sort(key=lambda f: (not f["excludes_zero"], f["kind"] != "attribute", -f["value"]))
    return {
        "exit": evaluation["exit"],
        "verdict": _verdict(findings, evaluation["groupings"]),
        "findings": findings,
        "overall": evaluation["groupings"][0]["groups"][0]["metrics"],
    }


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _note(finding: dict, groupings: list[dict]) -> str:
    """What the gap leaves out: classes (class-averaged gaps) or groups (group-metric gaps)."""
    grouping = next(g for g in groupings if g["attribute"] == finding["attribute"])
    gap = grouping["gaps"][finding["gap"]]
    if "classes_left_out" in gap:
        left = [c["class_name"] for c in gap["classes_left_out"]]
        used = len(gap["classes_used"])
        return f" (mean over {used} classes" + (f"; {', '.join(left)} left out)" if left else ")")
    return left_out_note(gap["left_out"])


def _verdict(findings: list[dict], groupings: list[dict]) -> str:
    if not findings:
        return "No gap could be computed: no attribute has two groups with enough cases of any class."
    top = findings[0]
    text = (
        f"{top['gap']} = {_fmt(top['value'])} (CI {_fmt(top['ci_low'])} to {_fmt(top['ci_high'])}) across "
        f"{top['attribute']}{_note(top, groupings)}"
    )
    if top["excludes_zero"]:
        return f"Largest gap whose interval excludes 0: {text}."
    return f"No gap's interval excludes 0; largest observed gap: {text}."
