"""A registered model (rows only, no files) and served predictions written the way serving writes
them (the app's group-commit writer, so its aggregate hook runs): live monitoring without training."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.auth.service import ensure_organisation
from app.db.base import new_id, utcnow
from app.db.engine import transaction
from app.db.group_commit import GroupCommitWriter
from app.serving import aggregates
from app.serving.models import PREDICTION_ID_PREFIX, ModelVersion, MonitoringCell, Prediction

ORG = "St Elsewhere"  # the organisation of ``Keys.headers()``'s default


def register_model(factory: sessionmaker[Session], *, threshold: float = 0.5, n_exits: int = 1, org: str = ORG) -> str:
    with transaction(factory) as session:
        organisation_id = ensure_organisation(session, org).id
        model = ModelVersion(
            organisation_id=organisation_id,
            method="erm",
            backbone="small",
            path="nowhere",
            sha256="0" * 64,
            files={},
            thresholds={"operating": threshold, "exits": [0.9] * (n_exits - 1) + [None]},
            config={},
        )
        session.add(model)
        session.flush()
        return model.id


def organisation_id(factory: sessionmaker[Session], org: str = ORG) -> str:
    with transaction(factory) as session:
        return ensure_organisation(session, org).id


def served_rows(
    model_id: str,
    org_id: str,
    scores: np.ndarray,
    demographics: list[dict[str, Any] | None],
    *,
    threshold: float = 0.5,
    exits: np.ndarray | None = None,
    days_ago: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    now = utcnow()
    rows = []
    for k, score in enumerate(scores):
        at: datetime = now - timedelta(days=int(days_ago[k])) if days_ago is not None else now
        rows.append(
            {
                "id": new_id(PREDICTION_ID_PREFIX),
                "created_at": at,
                "organisation_id": org_id,
                "model_version_id": model_id,
                "probability": float(score),
                "label": int(score >= threshold),
                "exit_index": int(exits[k]) if exits is not None else 0,
                "confidence": float(max(score, 1 - score)),
                "demographics": demographics[k],
            }
        )
    return rows


def store(writer: GroupCommitWriter, rows: list[dict[str, Any]]) -> list[str]:
    writer.submit(Prediction, rows).result()
    return [r["id"] for r in rows]


def stored_cells(factory: sessionmaker[Session], model_id: str) -> Counter[aggregates.Key]:
    """The model's monitoring cells as stored (zero counts left out)."""
    with factory() as session:
        rows = session.execute(select(MonitoringCell).where(MonitoringCell.model_version_id == model_id)).scalars()
        return Counter(
            {
                aggregates.Key(r.model_version_id, r.day, r.block, r.attribute, r.group, r.cell): r.count
                for r in rows
                if r.count
            }
        )


def recount(factory: sessionmaker[Session], model_id: str) -> Counter[aggregates.Key]:
    """The cells recomputed from the prediction rows as they stand."""
    with factory() as session:
        rows = session.scalars(select(Prediction).where(Prediction.model_version_id == model_id)).all()
    counts = aggregates.prediction_counts(
        {c: getattr(r, c) for c in ("model_version_id", "created_at", "probability", "exit_index", "demographics")}
        for r in rows
    )
    for r in rows:
        counts.update(aggregates.row_outcome_counts(r))
    return Counter({k: v for k, v in counts.items() if v})
