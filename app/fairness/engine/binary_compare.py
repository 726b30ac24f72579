"""Paired comparison of binary models evaluated on the same samples (``compare.compare_models``
dispatches here).

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
from dataclasses import dataclass

import numpy as np

from app.fairness.engine.binary import run_config, validate
from app.fairness.engine.bootstrap import run_bootstrap
from app.fairness.engine.gaps import gap_status, gap_values, used_groups
from app.fairness.engine.groups import Design, Intersections, build_design
from app.fairness.engine.inputs import PredictionSet
from app.fairness.engine.kernel import ColumnPlan, GroupArrays, plan_column, point_block
from app.fairness.engine.pairing import Basis, Headline, align, check_labels, comparison
from app.fairness.engine.resample import Clusters
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
BASIS = Basis(overall=("auc",), attribute=VERDICT_METRICS, higher_is_better=HIGHER_IS_BETTER)


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


@dataclass(frozen=True)
class Paired:
    """Models' headline values on their common samples, on the same resamples."""

    names: list[str]
    index: list[np.ndarray]  # per model: its rows of the common samples, in the reference's order
    n_matched: int
    design: Design
    clusters: Clusters | None
    points: list[Headline]
    boots: list[Headline] | None


def pair_binary(
    predictions: Mapping[str, PredictionSet],
    attributes: list[str],
    intersections: Intersections,
    n_boot: int,
    seed: int,
    min_count: int,
) -> Paired:
    """Match the models' samples and compute every headline metric on the same resamples."""
    names = list(predictions)
    sets = [predictions[name] for name in names]
    labels = [validate(p) for p in sets]
    index, n_matched = align(sets)
    y = check_labels(names, labels, index)
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
    boots = None
    if n_boot > 0:
        resampled = run_bootstrap(design, plans, n_boot, seed, clusters=clusters)
        boots = [headline(plan, b, min_count) for plan, b in zip(plans, resampled, strict=True)]
    return Paired(names, index, n_matched, design, clusters, points, boots)


def compare_binary(
    predictions: Mapping[str, PredictionSet],
    *,
    attributes: list[str],
    intersections: Intersections = True,
    n_boot: int = 1000,
    seed: int = 0,
    min_count: int = 10,
    confidence: float = 0.95,
) -> dict:
    """Differences of headline metrics, each model against the first (the reference), paired."""
    paired = pair_binary(predictions, attributes, intersections, n_boot, seed, min_count)
    return comparison(
        paired.names,
        [predictions[name] for name in paired.names],
        paired.index,
        paired.n_matched,
        paired.design,
        paired.clusters,
        paired.points,
        paired.boots,
        config=run_config(attributes, intersections, n_boot, seed, min_count, confidence),
        n_boot=n_boot,
        seed=seed,
        confidence=confidence,
        basis=BASIS,
    )
