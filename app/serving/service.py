"""Registry representations, prediction and outcomes. Never commits (the request's session does; prediction rows
go through the group-commit writer, see ``predict``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy.orm import Session

from app.cohorts.image_limits import ImageLimits
from app.core.errors import NotFoundError
from app.core.repository import OrgScopedRepository
from app.db.base import utcnow
from app.db.group_commit import GroupCommitWriter
from app.serving import aggregates, registry
from app.serving.directory import ServedModels
from app.serving.inputs import ImageInput
from app.serving.models import ModelVersion, Prediction
from app.serving.outputs import AnyRecord, parse_outcome, record_of, row_columns, served_predictions
from app.serving.runtime import ModelCache, ModelFiles, manifest_of
from app.serving.schemas import (
    ModelOut,
    MulticlassPredictionOut,
    MulticlassPredictResponse,
    MultilabelPredictionOut,
    MultilabelPredictResponse,
    OutcomeIn,
    PredictionOut,
    PredictResponse,
)
from app.settings import Settings

PREDICTIONS = OrgScopedRepository(Prediction, "prediction")


def represent(session: Session, organisation_id: str, models: Sequence[ModelVersion]) -> list[ModelOut]:
    ids = [m.id for m in models]
    aliases = registry.aliases_of(session, organisation_id, ids)
    evaluations = registry.training_evaluations(session, organisation_id, ids)
    return [ModelOut.of(m, aliases.get(m.id, []), evaluations.get(m.id)) for m in models]


def predict(
    served_models: ServedModels,
    writer: GroupCommitWriter,
    settings: Settings,
    cache: ModelCache,
    organisation_id: str,
    ref: str,
    inputs: Sequence[ImageInput],
) -> PredictResponse | MulticlassPredictResponse | MultilabelPredictResponse:
    """Run the early-exit chain on one batch and store one Prediction row per image.

    Unlike other services this one does not use the request's session, on purpose: the model is found
    through ``ServedModels`` (cached, or read-only sessions that on SQLite never wait for the write
    lock), and the rows are appended by the group-commit writer, which commits the rows of concurrent
    predictions together. This returns only once its rows are committed, so every prediction id in the
    response is stored; a request that fails earlier leaves nothing.
    """
    served, alias = served_models.find(organisation_id, ref)
    loaded = cache.get(served.files)
    result = loaded.predict([i.data for i in inputs], [i.name for i in inputs], ImageLimits.from_settings(settings))
    predictions = served_predictions(loaded, result, inputs)
    stored = {"created_at": utcnow(), "organisation_id": organisation_id, "model_version_id": served.id}
    writer.submit(Prediction, [{**stored, **row_columns(p)} for p in predictions]).result()
    common: dict[str, Any] = {
        "model_id": served.id,
        "model_sha256": loaded.sha256,
        "evaluation_id": served.evaluation_id,
        "alias": alias.name if alias else None,
        "gate_override": alias.override_reason if alias else None,
    }
    task, threshold, decision = loaded.task, loaded.operating_threshold, loaded.manifest.decision
    if threshold is not None:  # binary
        return PredictResponse(
            **common, operating_threshold=threshold, predictions=cast(list[PredictionOut], predictions)
        )
    assert decision is not None  # the manifest requires one for other tasks
    if task.kind == "multiclass":
        entries = cast(list[MulticlassPredictionOut], predictions)
        return MulticlassPredictResponse(**common, decision=decision, classes=task.classes, predictions=entries)
    labelled = cast(list[MultilabelPredictionOut], predictions)
    return MultilabelPredictResponse(**common, decision=decision, findings=task.classes, predictions=labelled)


def record_outcome(
    session: Session, settings: Settings, organisation_id: str, prediction_id: str, body: OutcomeIn
) -> AnyRecord:
    """Set (or correct) the ground truth of a served prediction, checked against its model's task
    (422 naming the value that does not fit), and count it in the monitoring aggregates in the same
    transaction.

    Locks, always in this order so concurrent posts cannot deadlock on PostgreSQL (SQLite's write
    transactions are serial anyway): the prediction row (two posts for one prediction cannot both take
    back its old outcome), the model's outcome counter, then the cells, in one sorted pass.
    """
    row = session.scalar(PREDICTIONS.query(organisation_id, id=prediction_id).with_for_update())
    if row is None:
        raise NotFoundError(PREDICTIONS.noun, prediction_id)
    manifest = None
    if row.output is not None:  # a binary row needs nothing of its model's files
        model = session.get_one(ModelVersion, row.model_version_id)
        manifest = manifest_of(ModelFiles.of(settings, model))
    outcome, findings = parse_outcome(manifest, body)
    conn = session.connection()
    seq = aggregates.next_outcome_seq(conn, row.model_version_id)
    counts = aggregates.row_outcome_counts(row, sign=-1)  # a correction takes back the old outcome
    row.outcome, row.outcome_findings, row.outcome_at, row.outcome_seq = outcome, findings, utcnow(), seq
    counts.update(aggregates.row_outcome_counts(row))
    aggregates.add(conn, counts)
    return record_of(row, manifest)
