"""A finished study's page input built by hand (``StudyOut`` and its configs' pooled reports), for
rendering the study page without running the study's jobs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from app.fairness.engine import MulticlassPredictionSet, MultilabelPredictionSet, compare_models
from app.studies.schemas import StudyChild, StudyOut


def two_configs(task: str, n: int = 500, k: int = 3, seed: int = 0) -> dict[int, Any]:
    """Configs 0 and 1 scoring the same samples (``k`` classes or findings, skin types "I-II" and
    "V-VI"); config 1's scores are noisier. Two exits."""
    rng = np.random.default_rng(seed)
    groups = {"skin_type": rng.choice(["I-II", "V-VI"], n).astype(object)}
    exits = {"exit_index": (rng.random(n) < 0.3).astype(np.int64), "exit_cost": np.array([0.5, 1.0])}
    names = tuple(f"{task[:5]}_{c}" for c in range(k))
    out: dict[int, Any] = {}
    if task == "multiclass":
        y = rng.integers(0, k, n)
        for config, noise in enumerate((1.0, 2.0)):
            logits = rng.normal(0.0, noise, (n, 2, k))
            logits[np.arange(n), :, y] += np.where(groups["skin_type"] == "V-VI", 1.0, 2.5)[:, None]
            probs = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
            out[config] = MulticlassPredictionSet(y_true=y, exit_probs=probs, classes=names, groups=groups, **exits)
        return out
    y = (rng.random((n, k)) < 0.3).astype(np.int64)
    for config, noise in enumerate((1.0, 2.0)):
        logits = rng.normal(0.0, noise, (n, 2, k)) + 2.0 * y[:, None, :] - 1.0
        out[config] = MultilabelPredictionSet(
            y_true=y,
            exit_scores=1 / (1 + np.exp(-logits)),
            findings=names,
            groups=groups,
            thresholds=np.full(k, 0.5),
            **exits,
        )
    return out


def finished_study(
    predictions: dict[int, Any], reports: dict[int, dict], thresholds: dict[int, dict[str, Any]], attribute: str
) -> StudyOut:
    """Configs 0 (the reference) and 1 with their pooled ``reports``, their fold models' ``thresholds``
    ("s0/f0" → threshold) and the paired comparison of their ``predictions`` across ``attribute``."""
    named = {f"c{i}": p for i, p in sorted(predictions.items())}
    comparison = compare_models(named, attributes=[attribute], n_boot=10)
    summaries = [
        {
            "index": i,
            "label": f"c{i}",
            "method": "erm" if i == 0 else "hsic",
            "pooled": list(thresholds[i]),
            "missing": [],
            "thresholds": thresholds[i],
            "n_predictions": len(predictions[i].y_true),
            "final_model_version_id": None,
            "evaluation_id": f"evl_pooled{i}",
        }
        for i in sorted(predictions)
    ]
    children = [
        StudyChild(
            job_id=f"job_{i}_{fold}",
            config=i,
            seed=0,
            fold=int(fold[-1]),
            status="succeeded",
            fraction=1.0,
            error=None,
            evaluation_id=f"evl_{i}_{fold[-1]}",
            model_version_id=None,
        )
        for i in sorted(predictions)
        for fold in thresholds[i]
    ]
    return StudyOut(
        id="std_test",
        name="task study",
        status="succeeded",
        cohort_id="coh_test",
        folds=2,
        seeds=1,
        repeat_splits=False,
        allow_failures=False,
        final_models=False,
        val_fraction=0.2,
        configs=[{"method": "erm", "seed": 0}, {"method": "hsic", "seed": 0, "lambda": 0.5}],
        progress=1.0,
        children=children,
        completion_job_id="job_done",
        result={"configs": summaries, "comparison": comparison},
        error=None,
        created_at=datetime(2026, 12, 2, tzinfo=UTC),
        finished_at=datetime(2026, 12, 2, 1, tzinfo=UTC),
    )
