"""Live monitoring of a served model: the demographic mix of every request and, for predictions whose
ground truth has been posted, subgroup metrics with intervals through the same metric definition as
every other evaluation (``evaluate_predictions``). The served probability is the score evaluated."""

from __future__ import annotations

from collections import Counter
from typing import cast

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.fairness.engine.inputs import PredictionSet
from app.fairness.evaluation import evaluate_predictions
from app.fairness.report_schema import FairnessReport
from app.serving.models import ModelVersion, Prediction
from app.serving.schemas import DemographicMix, GroupCount, MonitoringOut
from app.settings import Settings


def monitor(session: Session, settings: Settings, organisation_id: str, model: ModelVersion) -> MonitoringOut:
    rows = session.execute(
        select(Prediction.probability, Prediction.exit_index, Prediction.demographics, Prediction.outcome)
        .where(Prediction.organisation_id == organisation_id, Prediction.model_version_id == model.id)
        .order_by(Prediction.created_at, Prediction.id)
    ).all()
    n_exits = len(model.thresholds.get("exits") or [None])
    exit_counts = np.bincount([r.exit_index for r in rows], minlength=n_exits).tolist()
    demographics = [r.demographics or {} for r in rows]
    known = [i for i, r in enumerate(rows) if r.outcome is not None]
    report = None
    if known:
        attributes = sorted({k for i in known for k in demographics[i]})
        predictions = PredictionSet(
            y_true=np.array([rows[i].outcome for i in known], dtype=np.int64),
            exit_scores=np.array([[rows[i].probability] for i in known], dtype=np.float64),
            groups={a: np.array([demographics[i].get(a) for i in known], dtype=object) for a in attributes},
            threshold=float(model.thresholds["operating"]),
        )
        report = evaluate_predictions(predictions, attributes=attributes, settings=settings).report
    return MonitoringOut(
        model_id=model.id,
        model_sha256=model.sha256,
        n_predictions=len(rows),
        n_with_outcome=len(known),
        exit_counts=exit_counts,
        demographics=_mix(demographics),
        status="ok" if report is not None else "no_outcomes",
        report=cast("FairnessReport | None", report),  # the engine's dict, validated here by MonitoringOut
    )


def _mix(demographics: list[dict[str, str | None]]) -> list[DemographicMix]:
    n = len(demographics)
    out = []
    for attribute in sorted({k for d in demographics for k in d}):
        counts = Counter(d[attribute] for d in demographics if d.get(attribute) is not None)
        groups = [GroupCount(group=str(g), n=c, fraction=c / n) for g, c in sorted(counts.items())]
        out.append(DemographicMix(attribute=attribute, groups=groups, n_missing=n - sum(counts.values())))
    return out
