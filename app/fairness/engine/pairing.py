"""What every paired comparison shares, whatever the task: matching samples across models, the
difference rows with their paired-bootstrap intervals and Holm-adjusted p, the compute difference
of the served policies, and the per-attribute verdicts.

A difference's interval is the percentile interval for overall metrics and ``intervals.centred``
for gaps (extremum statistics); its p-value is the Wald test with the paired-bootstrap standard
error, Holm-adjusted over the metrics of one comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from app.fairness.engine.binary import METRIC_DEFINITION_VERSION
from app.fairness.engine.bootstrap import bootstrap_means
from app.fairness.engine.evaluate import num
from app.fairness.engine.groups import Design
from app.fairness.engine.intervals import centred, percentile
from app.fairness.engine.resample import Clusters
from app.fairness.engine.significance import bootstrap_wald, holm
from app.fairness.engine.status import OK

DIFFERENCE_RANGE = (-1.0, 1.0)  # a difference of two gaps
BETTER, WORSE, MIXED, NOISE = "better", "worse", "mixed", "not distinguishable from noise"

Headline = dict[tuple[str, str], np.ndarray]  # (attribute, metric) -> (b,) values


class Paired(Protocol):
    """What pairing reads from any prediction set."""

    @property
    def y_true(self) -> np.ndarray: ...

    @property
    def sample_ids(self) -> np.ndarray | None: ...

    @property
    def exit_index(self) -> np.ndarray | None: ...

    @property
    def exit_cost(self) -> np.ndarray | None: ...


def align(sets: Sequence[Paired]) -> tuple[list[np.ndarray], int]:
    """Per model, the indices of the common samples in the reference's order; and that count.

    Models are matched by ``sample_ids``; without ids anywhere, models of equal length are taken to
    be in the same order.
    """
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


def check_labels(names: Sequence[str], labels: Sequence[np.ndarray], index: Sequence[np.ndarray]) -> np.ndarray:
    """The reference's labels of the common samples; every model must have the same ones."""
    y = labels[0][index[0]]
    for name, lab, idx in zip(names[1:], labels[1:], index[1:], strict=True):
        if not np.array_equal(lab[idx], y):
            raise ValueError(f"model {name!r} has different labels for the same samples")
    return y


def sample_costs(predictions: Paired) -> np.ndarray | None:
    """Each sample's compute under the served policy (fraction of the model's full network); None
    when the policy uses exits whose costs are unknown."""
    n = len(predictions.y_true)
    if predictions.exit_index is None:
        return np.ones(n)
    if predictions.exit_cost is None:
        return None
    return np.asarray(predictions.exit_cost, dtype=np.float64)[np.asarray(predictions.exit_index, dtype=np.int64)]


def compute_difference(model: np.ndarray, reference: np.ndarray, samples: np.ndarray | None, confidence: float) -> dict:
    """Mean compute of two policies, their difference and its paired percentile interval and p."""
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


def difference_rows(
    model: Headline,
    reference: Headline,
    model_boot: Headline | None,
    reference_boot: Headline | None,
    confidence: float,
) -> list[dict]:
    """One row per headline key (model − reference), Holm-adjusted over the rows."""
    rows = []
    for key in reference:
        diff = model[key][0] - reference[key][0]
        low = high = p = np.nan
        if model_boot is not None and reference_boot is not None and np.isfinite(diff):
            samples = model_boot[key] - reference_boot[key]
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
                "value_model": num(model[key][0]),
                "value_reference": num(reference[key][0]),
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
    return rows


@dataclass(frozen=True)
class Basis:
    """What a comparison's verdicts rest on: the metrics of "overall" and of each attribute, and
    those where higher is better (lower, for every other metric)."""

    overall: tuple[str, ...]
    attribute: tuple[str, ...]
    higher_is_better: frozenset[str]


def verdicts(rows: list[dict], alpha: float, basis: Basis) -> list[dict]:
    """A plain verdict per attribute from the Holm-adjusted p of its differences and their sign.

    A difference counts when its Holm-adjusted p is below ``alpha``; it is an improvement when it
    moves the right way (a lower gap; higher for ``basis.higher_is_better``). The attribute's
    verdict is ``better`` when at least one difference improves and none worsens, ``worse`` the
    reverse, ``mixed`` when both happen, and ``not distinguishable from noise`` when none counts.
    Each row gets its own ``verdict`` too (``None`` for a metric outside the basis).
    """
    out: dict[str, dict] = {}
    for row in rows:
        attribute, metric = row["attribute"], row["metric"]
        metrics = basis.overall if attribute == "overall" else basis.attribute
        entry = out.setdefault(attribute, {"attribute": attribute, "verdict": NOISE, "better": [], "worse": []})
        row["verdict"] = NOISE if metric in metrics else None
        if metric not in metrics or row["p_holm"] is None or row["p_holm"] >= alpha or not row["difference"]:
            continue
        improves = (row["difference"] > 0) == (metric in basis.higher_is_better)
        row["verdict"] = BETTER if improves else WORSE
        entry["better" if improves else "worse"].append(metric)
    for entry in out.values():
        if entry["better"] or entry["worse"]:
            entry["verdict"] = MIXED if entry["better"] and entry["worse"] else BETTER if entry["better"] else WORSE
    return list(out.values())


def comparison(
    names: Sequence[str],
    sets: Sequence[Paired],
    index: Sequence[np.ndarray],
    n_matched: int,
    design: Design,
    clusters: Clusters | None,
    points: Sequence[Headline],
    boots: Sequence[Headline] | None,
    *,
    config: dict,
    n_boot: int,
    seed: int,
    confidence: float,
    basis: Basis,
) -> dict:
    """The ``Comparison`` document: per model against the first, its difference rows, compute
    difference (on the same resamples) and verdicts."""
    costs = [sample_costs(p) for p in sets]
    known = [c is not None for c in costs]
    per_model = [c[idx][design.order] for c, idx in zip(costs, index, strict=True) if c is not None]
    cost_matrix = np.stack(per_model) if per_model else np.empty((0, n_matched))
    cost_boot = (
        bootstrap_means(design, cost_matrix, n_boot, seed, clusters=clusters) if n_boot > 0 and per_model else None
    )
    cost_row = np.cumsum(known) - 1  # model -> its row of cost_matrix (when known)
    comparisons = []
    for m in range(1, len(names)):
        rows = difference_rows(
            points[m], points[0], None if boots is None else boots[m], None if boots is None else boots[0], confidence
        )
        compute = None
        if known[0] and known[m]:
            compute = compute_difference(
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
                "verdicts": verdicts(rows, 1.0 - confidence, basis),
            }
        )
    return {
        "metric_definition_version": METRIC_DEFINITION_VERSION,
        "config": {**config, **({} if clusters is None else {"n_clusters": int(clusters.bounds[-1])})},
        "reference": names[0],
        "models": list(names),
        "n_matched": n_matched,
        "n_unmatched": {name: len(p.y_true) - n_matched for name, p in zip(names, sets, strict=True)},
        "comparisons": comparisons,
    }
