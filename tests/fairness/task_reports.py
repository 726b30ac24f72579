"""Multi-class and multi-label report dicts for the pages that render them, built before the engine's
own multi-class ``build_report`` is merged: a ``MulticlassReport`` from simulated confusion matrices
(real counts; intervals a fixed ± 0.05 around each value) and a ``MultilabelReport`` whose findings'
reports are the binary engine's own."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import TypeAdapter

from app.fairness.engine import build_report
from app.fairness.engine.inputs import MultilabelPredictionSet
from app.fairness.report_schema import MulticlassReport, MultilabelReport

MIN_COUNT = 10


def _value(value: float | None, n: int) -> dict[str, Any]:
    if value is None:
        return {"value": None, "ci_low": None, "ci_high": None, "status": "undefined", "n": n}
    return {
        "value": value,
        "ci_low": max(0.0, value - 0.05),
        "ci_high": min(1.0, value + 0.05),
        "status": "ok" if n >= MIN_COUNT else "insufficient",
        "n": n,
    }


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else float(num / den)


def _one_vs_rest(confusion: np.ndarray, c: int) -> dict[str, Any]:
    tp = confusion[c, c]
    n_pos = int(confusion[c].sum())
    n_neg = int(confusion.sum() - n_pos)
    fp = confusion[:, c].sum() - tp
    tpr, fpr = _ratio(tp, n_pos), _ratio(fp, n_neg)
    ppv = _ratio(tp, tp + fp)
    f1 = None if not tpr or not ppv else 2 * tpr * ppv / (tpr + ppv)
    auc = None if tpr is None or fpr is None else (1 + tpr - fpr) / 2
    return {
        "n_pos": n_pos,
        "n_neg": n_neg,
        "tpr": _value(tpr, n_pos),
        "fpr": _value(fpr, n_neg),
        "tnr": _value(None if fpr is None else 1 - fpr, n_neg),
        "ppv": _value(ppv, int(tp + fp)),
        "f1": _value(f1, n_pos),
        "auc": _value(auc, min(n_pos, n_neg)),
        "pf": _value(auc, min(n_pos, n_neg)),
    }


def _group(label: str, levels: dict[str, str], confusion: np.ndarray, classes: list[str]) -> dict[str, Any]:
    n = int(confusion.sum())
    per_class = {name: _one_vs_rest(confusion, c) for c, name in enumerate(classes)}
    present = [c for c in range(len(classes)) if confusion[c].sum()]
    recalls = [confusion[c, c] / confusion[c].sum() for c in present]
    precisions = [_ratio(confusion[c, c], confusion[:, c].sum()) or 0.0 for c in present]
    f1s = [2 * p * r / (p + r) if p + r else 0.0 for p, r in zip(precisions, recalls, strict=True)]

    def mean(values: list[float]) -> float | None:
        return float(np.mean(values)) if values else None

    return {
        "group": label,
        "levels": levels,
        "n": n,
        "class_counts": [int(x) for x in confusion.sum(axis=1)],
        "metrics": {
            "accuracy": _value(_ratio(np.trace(confusion), n), n),
            "balanced_accuracy": _value(mean(recalls), n),
            "macro_precision": _value(mean(precisions), n),
            "macro_recall": _value(mean(recalls), n),
            "macro_f1": _value(mean(f1s), n),
        },
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


def _gap(values: list[float | None]) -> dict[str, Any]:
    defined = [v for v in values if v is not None]
    value = float(max(defined) - min(defined)) if len(defined) >= 2 else None
    return {
        **_value(value, len(defined)),
        "status": "ok" if value is not None else "undefined",
        "p_value": None,
        "groups_used": [],
        "left_out": [],
    }


def _class_gap(groups: list[dict[str, Any]], classes: list[str], rate: str) -> dict[str, Any]:
    used, left_out, gaps, paper = [], [], [], []
    for name in classes:
        values = [g["per_class"][name][rate]["value"] for g in groups if g["per_class"][name][rate]["status"] == "ok"]
        zeros = [g["per_class"][name][rate]["value"] or 0.0 for g in groups]
        paper.append(max(zeros) - min(zeros))
        if len(values) >= 2:
            used.append(name)
            gaps.append(max(values) - min(values))
        else:
            left_out.append({"class_name": name, "reason": f"fewer than two groups with {MIN_COUNT} cases"})
    value = float(np.mean(gaps)) if gaps else None
    return {
        **_value(value, len(used)),
        "status": "ok" if value is not None else "undefined",
        "classes_used": used,
        "classes_left_out": left_out,
        "paper_value": float(np.mean(paper)),
    }


def multiclass_report(n_classes: int, n: int = 3000, seed: int = 0, hostile: str | None = None) -> dict[str, Any]:
    """A policy evaluation of ``n`` samples over ``n_classes`` (Zipf-like support), attributes
    ``skin_type`` (three groups, type "VI" predicted worse) and ``sex``; ``hostile`` renames class 0.
    Two exits, so the page shows exit rates and the per-exit table."""
    rng = np.random.default_rng(seed)
    classes = [f"class {c:03d}" for c in range(n_classes)]
    if hostile is not None:
        classes[0] = hostile
    weights = 1.0 / np.arange(1, n_classes + 1)
    y = rng.choice(n_classes, n, p=weights / weights.sum())
    skin = rng.choice(["I-II", "III-IV", "VI"], n)
    sex = rng.choice(["F", "M"], n)
    wrong = rng.random(n) < np.where(skin == "VI", 0.45, 0.2)
    pred = np.where(wrong, rng.choice(n_classes, n), y)
    columns = {"skin_type": skin, "sex": sex}

    def grouping(attribute: str) -> dict[str, Any]:
        labels = ["all"] if attribute == "overall" else sorted(set(columns[attribute]))
        groups = []
        for label in labels:
            mask = np.ones(n, bool) if attribute == "overall" else columns[attribute] == label
            confusion = np.zeros((n_classes, n_classes), np.int64)
            np.add.at(confusion, (y[mask], pred[mask]), 1)
            levels = {} if attribute == "overall" else {attribute: label}
            groups.append(_group(label, levels, confusion, classes))
        entry: dict[str, Any] = {
            "attribute": attribute,
            "kind": "overall" if attribute == "overall" else "attribute",
            "n_missing": 0,
            "groups": groups,
        }
        if attribute == "overall":
            return entry
        metric_gap = {m: _gap([g["metrics"][m]["value"] for g in groups]) for m in groups[0]["metrics"]}
        entry["gaps"] = {
            "eopp0": _class_gap(groups, classes, "tnr"),
            "eopp1": _class_gap(groups, classes, "tpr"),
            "eodd": _class_gap(groups, classes, "fpr"),
            "accuracy_gap": metric_gap["accuracy"],
            "balanced_accuracy_gap": metric_gap["balanced_accuracy"],
            "macro_precision_diff": metric_gap["macro_precision"],
            "macro_recall_diff": metric_gap["macro_recall"],
            "macro_f1_diff": metric_gap["macro_f1"],
        }
        entry["averages"] = {
            m: _value(float(np.mean([g["metrics"][m]["value"] for g in groups])), len(groups))
            for m in ("macro_precision", "macro_recall", "macro_f1")
        }
        entry["per_class_gaps"] = {
            name: {
                gap: _gap([g["per_class"][name][rate]["value"] for g in groups])
                for gap, rate in (
                    ("eopp0", "tnr"),
                    ("eopp1", "tpr"),
                    ("eodd", "fpr"),
                    ("pfd", "pf"),
                    ("auc_gap", "auc"),
                )
            }
            for name in classes
        }
        return entry

    groupings = [grouping(a) for a in ("overall", "skin_type", "sex")]
    eopp1 = groupings[1]["gaps"]["eopp1"]
    exit_groups = [
        {
            "group": g["group"],
            "n": g["n"],
            "exit_rates": [_value(0.4, g["n"]), _value(0.6, g["n"])],
            "mean_compute": _value(0.8, g["n"]),
        }
        for g in groupings[1]["groups"]
    ]
    report = {
        "task": "multiclass",
        "metric_definition_version": "test",
        "classes": classes,
        "config": {
            "attributes": ["skin_type", "sex"],
            "intersections": [],
            "n_boot": 50,
            "seed": seed,
            "min_count": MIN_COUNT,
            "confidence": 0.95,
            "alpha": 0.05,
            "decision": "argmax",
            "class_thresholds": None,
            "definitions": {"eopp1": "mean over classes of the TPR gap"},
        },
        "population": {
            "n": n,
            "n_exits": 2,
            "class_counts": {name: int((y == c).sum()) for c, name in enumerate(classes)},
        },
        "groupings": [
            {
                "attribute": g["attribute"],
                "kind": g["kind"],
                "groups": [x["group"] for x in g["groups"]],
                "n_missing": 0,
            }
            for g in groupings
        ],
        "evaluations": [{"exit": e, "groupings": groupings} for e in (0, 1, "policy")],
        "exits": {
            "n_exits": 2,
            "exit_cost": [0.5, 1.0],
            "groupings": [{"attribute": "skin_type", "kind": "attribute", "groups": exit_groups}],
        },
        "summary": {
            "exit": "policy",
            "verdict": f"skin_type: mean TPR gap over classes {eopp1['value']:.3f}",
            "findings": [
                {
                    "attribute": "skin_type",
                    "kind": "attribute",
                    "gap": "eopp1",
                    "value": eopp1["value"],
                    "ci_low": eopp1["ci_low"],
                    "ci_high": eopp1["ci_high"],
                    "excludes_zero": True,
                }
            ],
            "overall": groupings[0]["groups"][0]["metrics"],
        },
    }
    return TypeAdapter(MulticlassReport).validate_python(report)  # type: ignore[return-value]


def multilabel_report(findings: list[str], n: int = 600, seed: int = 0) -> dict[str, Any]:
    """Each finding scored by the binary engine on its known labels (about 10 % unknown), two exits;
    the summary holds each gap's largest attribute finding."""
    rng = np.random.default_rng(seed)
    f = len(findings)
    y = (rng.random((n, f)) < 0.3).astype(np.int64)
    y[rng.random((n, f)) < 0.1] = -1
    skin = rng.choice(["I-II", "III-IV", "VI"], n).astype(object)
    separation = np.where(skin == "VI", 0.6, 1.6)[:, None, None]
    noise = rng.normal(0.0, 1.0, (n, 2, f))
    scores = 1.0 / (1.0 + np.exp(-(noise + separation * (y[:, None, :] == 1) - 0.8)))
    predictions = MultilabelPredictionSet(
        y_true=y,
        exit_scores=scores,
        findings=tuple(findings),
        groups={"skin_type": skin, "sex": rng.choice(["F", "M"], n).astype(object)},
        thresholds=np.full(f, 0.5),
        exit_index=(rng.random(n) < 0.3).astype(np.int64),
        exit_cost=np.array([0.5, 1.0]),
    )
    per_finding = {
        name: build_report(predictions.finding(i), attributes=["skin_type", "sex"], n_boot=20)
        for i, name in enumerate(findings)
    }
    summary = []
    for name, finding_report in per_finding.items():
        largest: dict[str, Any] = {}
        for finding in finding_report["summary"]["findings"]:
            if finding["gap"] not in largest or finding["value"] > largest[finding["gap"]]["value"]:
                largest[finding["gap"]] = finding
        summary.append({"finding": name, "verdict": finding_report["summary"]["verdict"], "gaps": largest})
    counts = {
        name: {
            "n": int((y[:, i] >= 0).sum()),
            "n_pos": int((y[:, i] == 1).sum()),
            "n_neg": int((y[:, i] == 0).sum()),
            "n_unknown": int((y[:, i] < 0).sum()),
        }
        for i, name in enumerate(findings)
    }
    report = {
        "task": "multilabel",
        "metric_definition_version": next(iter(per_finding.values()))["metric_definition_version"],
        "findings": findings,
        "population": {"n": n, "n_exits": 2, "per_finding": counts},
        "per_finding": per_finding,
        "summary": summary,
    }
    return TypeAdapter(MultilabelReport).validate_python(report)  # type: ignore[return-value]
