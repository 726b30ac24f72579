"""A registered model (rows only, no files) and served predictions written the way serving writes
them (the app's group-commit writer, so its aggregate hook runs): live monitoring without training."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.auth.service import ensure_organisation
from app.db.base import new_id, utcnow
from app.db.engine import transaction
from app.db.group_commit import GroupCommitWriter
from app.serving.models import PREDICTION_ID_PREFIX, ModelVersion, Prediction

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
