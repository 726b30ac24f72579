"""Simulated predictions for the fairness-engine tests."""

from __future__ import annotations

import numpy as np

from app.fairness.engine import PredictionSet


def simulate(
    n: int,
    seed: int,
    *,
    prevalence: float = 0.3,
    shift: float = 1.2,
    group_shift: float = 0.0,
    missing: float = 0.0,
    n_exits: int = 1,
) -> PredictionSet:
    """Logistic scores; skin type "VI" gets ``group_shift`` less separation (a planted disparity)."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], n).astype(object)
    age = rng.choice(["<40", "40-59", "60-74", ">=75"], n).astype(object)
    skin = rng.choice(["I", "II", "III", "IV", "V", "VI"], n).astype(object)
    if missing:
        age[rng.random(n) < missing] = None
    y = (rng.random(n) < prevalence).astype(np.int64)
    separation = shift - group_shift * (skin == "VI")
    columns = [
        1.0 / (1.0 + np.exp(-(rng.normal(0.0, 1.0, n) + (0.6 + 0.4 * e / max(n_exits - 1, 1)) * separation * y - 1)))
        for e in range(n_exits)
    ]
    scores = np.stack(columns, axis=1)
    exit_index = exit_cost = None
    if n_exits > 1:
        confident = np.maximum(scores, 1 - scores) >= 0.8
        confident[:, -1] = True
        exit_index = confident.argmax(axis=1)
        exit_cost = np.linspace(1.0 / n_exits, 1.0, n_exits)
    return PredictionSet(
        y_true=y,
        exit_scores=scores,
        groups={"sex": sex, "age_group": age, "skin_type": skin},
        threshold=0.5,
        exit_index=exit_index,
        exit_cost=exit_cost,
        sample_ids=np.arange(n),
    )


def grouping(report: dict, attribute: str, exit_key: object = "policy") -> dict:
    """The entry of ``attribute`` in the evaluation ``exit_key`` of a report."""
    evaluation = next(e for e in report["evaluations"] if e["exit"] == exit_key)
    return next(g for g in evaluation["groupings"] if g["attribute"] == attribute)


def group(report: dict, attribute: str, label: str, exit_key: object = "policy") -> dict:
    return next(g for g in grouping(report, attribute, exit_key)["groups"] if g["group"] == label)
