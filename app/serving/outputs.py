"""What a served prediction says, per task: the response entry, the stored row, the outcome a caller
may record for it, and the row read back.

A binary row is exactly what it always was (``output`` and ``outcome_findings`` null). A multiclass or
multilabel row keeps ``probability``/``label``/``outcome`` meaningful (``Prediction``'s docstring) and
holds the full output in ``output``: ``{"task", "probabilities"}`` in the model's class order, plus
``"decisions"`` per finding for a multilabel model. Names are not stored per row; they are the
model's (``model.json``), which the registered hash pins.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from app.core.errors import InputError
from app.db.base import new_id
from app.modelpkg.manifest import ModelManifest
from app.modelpkg.onnx_chain import ChainResult
from app.serving.inputs import ImageInput
from app.serving.models import PREDICTION_ID_PREFIX, Prediction
from app.serving.runtime import LoadedModel
from app.serving.schemas import (
    FindingOut,
    MulticlassPredictionOut,
    MulticlassPredictionRecord,
    MultilabelPredictionOut,
    MultilabelPredictionRecord,
    OutcomeIn,
    PredictionOut,
    PredictionRecord,
)

ServedPrediction = PredictionOut | MulticlassPredictionOut | MultilabelPredictionOut
AnyRecord = PredictionRecord | MulticlassPredictionRecord | MultilabelPredictionRecord
_COMMON = ("id", "exit_index", "confidence", "demographics")


def served_predictions(
    loaded: LoadedModel, result: ChainResult, inputs: Sequence[ImageInput]
) -> list[ServedPrediction]:
    """One response entry per image, each with a new prediction id."""
    labels, confidence = loaded.labels(result.probability), result.confidence
    common: list[dict[str, Any]] = [
        {
            "id": new_id(PREDICTION_ID_PREFIX),
            "image": item.name,
            "exit_index": int(result.exit_index[k]),
            "confidence": float(confidence[k]),
            "demographics": item.demographics,
        }
        for k, item in enumerate(inputs)
    ]
    kind, names = loaded.task.kind, loaded.task.classes
    if kind == "binary":
        return [
            PredictionOut(**c, probability=float(p), label=int(label))
            for c, p, label in zip(common, result.probability, labels, strict=True)
        ]
    if kind == "multiclass":
        return [
            MulticlassPredictionOut(
                **c,
                probability=float(p[label]),
                label=int(label),
                probabilities=dict(zip(names, p.tolist(), strict=True)),
                predicted_class=names[label],
            )
            for c, p, label in zip(common, result.probability, labels, strict=True)
        ]
    thresholds = loaded.decision_thresholds
    assert thresholds is not None  # a multilabel manifest has one per finding
    return [
        MultilabelPredictionOut(**c, findings=_findings(names, p, d, thresholds))
        for c, p, d in zip(common, result.probability, labels, strict=True)
    ]


def _findings(
    names: Sequence[str], probs: np.ndarray, decisions: np.ndarray, thresholds: np.ndarray
) -> dict[str, FindingOut]:
    return {
        name: FindingOut(probability=float(probs[f]), decision=int(decisions[f]), threshold=float(thresholds[f]))  # type: ignore[arg-type]
        for f, name in enumerate(names)
    }


def row_columns(prediction: ServedPrediction) -> dict[str, Any]:
    """The ``Prediction`` columns of a response entry (``image`` is the request's, not stored)."""
    if isinstance(prediction, MultilabelPredictionOut):
        probs = [f.probability for f in prediction.findings.values()]
        decisions = [f.decision for f in prediction.findings.values()]
        output = {"task": "multilabel", "probabilities": probs, "decisions": decisions}
        return {
            **prediction.model_dump(include=set(_COMMON)),
            "probability": max(probs),
            "label": int(any(decisions)),
            "output": output,
        }
    if isinstance(prediction, MulticlassPredictionOut):
        output = {"task": "multiclass", "probabilities": list(prediction.probabilities.values())}
        return {**prediction.model_dump(include={*_COMMON, "probability", "label"}), "output": output}
    return prediction.model_dump(exclude={"image"})


def parse_outcome(manifest: ModelManifest | None, body: OutcomeIn) -> tuple[int, list[int | None] | None]:
    """``(outcome, outcome_findings)`` to store for a prediction of the model ``manifest`` (``None``:
    a binary model); ``InputError`` (422) naming the field and the value that does not fit the model."""
    task = manifest.task if manifest is not None else None
    if task is None or task.kind == "binary":
        if not isinstance(body.outcome, int):
            raise _refused("outcome", f"a binary model's outcome is 0 or 1, not {_shown(body)}")
        return body.outcome, None
    if task.kind == "multiclass":
        classes = ", ".join(task.classes)
        if not isinstance(body.outcome, str):
            raise _refused("outcome", f"a multiclass model's outcome is a class name ({classes}), not {_shown(body)}")
        if body.outcome not in task.classes:
            raise _refused("outcome", f"{body.outcome!r} is not a class of this model; classes: {classes}")
        return task.classes.index(body.outcome), None
    if body.findings is None:
        raise _refused("findings", "a multilabel model's outcome is findings: {finding: 0, 1 or null}")
    unknown = [name for name in body.findings if name not in task.classes]
    if unknown:
        raise _refused(
            "findings",
            f"{', '.join(map(repr, unknown))} not a finding of this model; findings: {', '.join(task.classes)}",
        )
    truth: list[int | None] = [body.findings.get(name) for name in task.classes]
    if all(value is None for value in truth):
        raise _refused("findings", "every finding is unknown: give at least one as 0 or 1")
    return int(any(value == 1 for value in truth)), truth


def _shown(body: OutcomeIn) -> str:
    return repr(body.outcome) if body.outcome is not None else "findings"


def _refused(field: str, message: str) -> InputError:
    return InputError("the outcome does not fit the model", [{"field": f"body.{field}", "message": message}])


def record_of(row: Prediction, manifest: ModelManifest | None) -> AnyRecord:
    """The stored row as the outcome endpoint answers it (``manifest`` ``None`` for a binary row)."""
    base = PredictionRecord.of(row)
    if row.output is None or manifest is None:
        return base
    names, probs = manifest.task.classes, row.output["probabilities"]
    if row.output["task"] == "multiclass":
        return MulticlassPredictionRecord(
            **base.model_dump(),
            probabilities=dict(zip(names, probs, strict=True)),
            predicted_class=names[row.label],
            outcome_class=names[row.outcome] if row.outcome is not None else None,
        )
    decision = manifest.decision
    assert decision is not None and decision.thresholds is not None  # a multilabel manifest has them
    findings = _findings(names, np.asarray(probs), np.asarray(row.output["decisions"]), np.asarray(decision.thresholds))
    truth = dict(zip(names, row.outcome_findings, strict=True)) if row.outcome_findings is not None else None
    return MultilabelPredictionRecord(**base.model_dump(), findings=findings, outcome_findings=truth)
