"""Paired comparison of multi-class models, and of multi-label models finding by finding.

Multi-class: on the common samples and the same resamples (stratified by cell × true class, or
patient-clustered with the reference's ``clusters``), the differences of overall accuracy, macro F1
and balanced accuracy, and per attribute (and intersection) of the class-averaged Eopp0, Eopp1 and
Eodd (``class_mean_eopp0`` …, each over the classes defined for the reference's counts, which every
model shares) and of ``macro_f1_diff``. Multi-label: each finding's binary comparison
(``binary_compare``), its metrics named ``finding:<finding>:<metric>``, Holm-adjusted together;
the compute difference over every common sample. Rows, intervals, p-values and verdicts as in
``pairing``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from app.fairness.engine.binary import run_config
from app.fairness.engine.binary_compare import BASIS as BINARY_BASIS
from app.fairness.engine.binary_compare import pair_binary
from app.fairness.engine.class_gaps import GROUP_GAPS, class_mean_values, defined_classes
from app.fairness.engine.class_kernel import ClassArrays, ClassPlan, bootstrap_classes, plan_classes, point_classes
from app.fairness.engine.class_validate import validate_multiclass
from app.fairness.engine.gaps import gap_values
from app.fairness.engine.groups import Intersections, build_design
from app.fairness.engine.inputs import MulticlassPredictionSet, MultilabelPredictionSet
from app.fairness.engine.multilabel import validate_multilabel
from app.fairness.engine.pairing import Basis, Headline, align, check_labels, comparison
from app.fairness.engine.resample import Clusters
from app.fairness.engine.status import OK, status_of

OVERALL_CLASS_METRICS = ("accuracy", "macro_f1", "balanced_accuracy")
CLASS_MEAN = {"class_mean_eopp0": "eopp0", "class_mean_eopp1": "eopp1", "class_mean_eodd": "eodd"}
CLASS_BASIS = Basis(
    overall=OVERALL_CLASS_METRICS,
    attribute=(*CLASS_MEAN, "macro_f1_diff"),
    higher_is_better=frozenset(OVERALL_CLASS_METRICS),
)


def class_headline(plan: ClassPlan, arrays: dict[str, ClassArrays], min_count: int) -> Headline:
    """``(b,)`` arrays of every compared multi-class metric, keyed by (attribute, metric).

    Statuses come from the data's counts, the same for every model of a comparison."""
    out: Headline = {("overall", m): arrays["overall"][m][:, 0] for m in OVERALL_CLASS_METRICS}
    for gp in plan.groupings[1:]:
        n_true = gp.n_true
        n_neg = n_true.sum(axis=1, keepdims=True) - n_true
        statuses = {
            "tpr": status_of(n_true, min_count),
            "fpr": status_of(n_neg, min_count),
            "tnr": status_of(n_neg, min_count),
        }
        grouped = arrays[gp.grouping.attribute]
        for metric, name in CLASS_MEAN.items():
            masks, _ = defined_classes(name, statuses)
            out[(gp.grouping.attribute, metric)] = class_mean_values(name, masks, grouped)
        used = status_of(n_true.sum(axis=1), min_count) == OK
        out[(gp.grouping.attribute, "macro_f1_diff")] = gap_values("macro_f1_diff", grouped, used, GROUP_GAPS)
    return out


def compare_multiclass(
    predictions: Mapping[str, MulticlassPredictionSet],
    *,
    attributes: list[str],
    intersections: Intersections = True,
    n_boot: int = 1000,
    seed: int = 0,
    min_count: int = 10,
    confidence: float = 0.95,
) -> dict:
    """Paired differences of multi-class models, each against the first (the reference)."""
    names = list(predictions)
    sets = [predictions[name] for name in names]
    classes = sets[0].classes
    for name, p in zip(names[1:], sets[1:], strict=True):
        if p.classes != classes:
            raise ValueError(f"model {name!r} has classes {list(p.classes)}, the reference {list(classes)}")
    validated = [validate_multiclass(p) for p in sets]
    index, n_matched = align(sets)
    y = check_labels(names, [labels for labels, _ in validated], index)
    reference = sets[0]
    groups = {a: np.asarray(reference.groups[a], dtype=object)[index[0]] for a in attributes}
    policies = []
    for p, (_, probs), idx in zip(sets, validated, index, strict=True):
        chosen = probs[:, -1, :] if p.exit_index is None else probs[np.arange(len(probs)), p.exit_index, :]
        policies.append(chosen[idx])
    decisions = [p.predicted(probs) for p, probs in zip(sets, policies, strict=True)]
    k = len(classes)
    design = build_design(y, groups, attributes, intersections=intersections, sort_by=decisions[0], n_labels=k)
    clusters = None
    if reference.clusters is not None:
        clusters = Clusters.build(
            np.asarray(reference.clusters, dtype=object)[index[0]], design.strata_bounds, design.order
        )
    order = design.order
    plans = [plan_classes(p[order], y[order], d[order], design) for p, d in zip(policies, decisions, strict=True)]
    points = [class_headline(plan, point_classes(plan), min_count) for plan in plans]
    boots = None
    if n_boot > 0:
        resampled = bootstrap_classes(design, plans, n_boot, seed, clusters=clusters)
        boots = [class_headline(plan, b, min_count) for plan, b in zip(plans, resampled, strict=True)]
    return comparison(
        names,
        sets,
        index,
        n_matched,
        design,
        clusters,
        points,
        boots,
        config=run_config(attributes, intersections, n_boot, seed, min_count, confidence),
        n_boot=n_boot,
        seed=seed,
        confidence=confidence,
        basis=CLASS_BASIS,
    )


def _prefixed(headline: Headline, finding: str) -> Headline:
    return {(attribute, f"finding:{finding}:{metric}"): v for (attribute, metric), v in headline.items()}


def compare_multilabel(
    predictions: Mapping[str, MultilabelPredictionSet],
    *,
    attributes: list[str],
    intersections: Intersections = True,
    n_boot: int = 1000,
    seed: int = 0,
    min_count: int = 10,
    confidence: float = 0.95,
) -> dict:
    """Each finding's paired binary comparison, in one document per pair of models."""
    names = list(predictions)
    sets = [predictions[name] for name in names]
    findings = sets[0].findings
    for name, p in zip(names[1:], sets[1:], strict=True):
        if p.findings != findings:
            raise ValueError(f"model {name!r} has findings {list(p.findings)}, the reference {list(findings)}")
    labels = [validate_multilabel(p) for p in sets]
    index, n_matched = align(sets)
    check_labels(names, labels, index)
    points: list[Headline] = [{} for _ in sets]
    boots: list[Headline] | None = [{} for _ in sets] if n_boot > 0 else None
    for f, finding in enumerate(findings):
        try:
            paired = pair_binary(
                {name: p.finding(f) for name, p in zip(names, sets, strict=True)},
                attributes,
                intersections,
                n_boot,
                seed,
                min_count,
            )
        except ValueError as error:
            raise ValueError(f"finding {finding!r}: {error}") from error
        for m in range(len(sets)):
            points[m].update(_prefixed(paired.points[m], finding))
            if boots is not None and paired.boots is not None:
                boots[m].update(_prefixed(paired.boots[m], finding))
    # The compute difference is per sample, whatever the finding: resampled within cells.
    groups = {a: np.asarray(sets[0].groups[a], dtype=object)[index[0]] for a in attributes}
    design = build_design(np.zeros(n_matched, dtype=np.int64), groups, attributes, intersections=intersections)
    basis = Basis(
        overall=tuple(f"finding:{f}:{m}" for f in findings for m in BINARY_BASIS.overall),
        attribute=tuple(f"finding:{f}:{m}" for f in findings for m in BINARY_BASIS.attribute),
        higher_is_better=frozenset(f"finding:{f}:{m}" for f in findings for m in BINARY_BASIS.higher_is_better),
    )
    return comparison(
        names,
        sets,
        index,
        n_matched,
        design,
        None,
        points,
        boots,
        config=run_config(attributes, intersections, n_boot, seed, min_count, confidence),
        n_boot=n_boot,
        seed=seed,
        confidence=confidence,
        basis=basis,
    )
