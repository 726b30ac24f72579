"""Request and response bodies of the model registry, prediction and monitoring endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from app.fairness.report_schema import Gap, Value
from app.serving.models import ModelVersion, Prediction

AttributeName = Annotated[str, StringConstraints(min_length=1, max_length=64)]
GroupLabel = Annotated[str, StringConstraints(max_length=128)]
Demographics = Annotated[
    dict[AttributeName, GroupLabel | None],
    Field(
        max_length=16,
        description="group labels as strings, named like the cohort's attributes, e.g. "
        '{"sex": "female", "age_group": "60-79"}; null or absent means unknown',
    ),
]


class ModelOut(BaseModel):
    id: str
    created_at: datetime
    method: str
    backbone: str
    cohort_id: str | None
    job_id: str | None
    stage: str = Field(description="promoted (an alias points to it) or candidate")
    aliases: list[str]
    sha256: str = Field(description="SHA-256 of model.json, which lists every other file's hash")
    files: dict[str, str] = Field(description="file name -> SHA-256 (ONNX graphs)")
    thresholds: dict[str, Any] = Field(description="operating threshold and per-exit early-exit thresholds")
    config: dict[str, Any] = Field(description="the training config")
    evaluation_id: str | None = Field(description="the training job's evaluation (test split)")

    @classmethod
    def of(cls, model: ModelVersion, aliases: list[str], evaluation_id: str | None) -> ModelOut:
        data = {name: getattr(model, name) for name in cls.model_fields if name not in ("aliases", "evaluation_id")}
        return cls(**data, aliases=aliases, evaluation_id=evaluation_id)


class ModelList(BaseModel):
    items: list[ModelOut]
    next_cursor: str | None


class PredictImage(BaseModel):
    data: str = Field(description="the image file (PNG, JPEG or DICOM), base64-encoded")
    name: str | None = Field(default=None, max_length=255, description="a label echoed back in errors")
    demographics: Demographics | None = None


class PredictJson(BaseModel):
    images: list[PredictImage] = Field(min_length=1)


class PredictionOut(BaseModel):
    id: str = Field(description="prediction id, for POST /v1/predictions/{id}/outcome")
    image: str
    probability: float = Field(description="probability of the positive class at the exit that decided")
    label: int = Field(description="1 when probability >= the model's frozen operating threshold")
    exit_index: int = Field(description="0-based exit that decided; the last exit is the final head")
    confidence: float = Field(description="max(probability, 1 - probability) at that exit")
    demographics: dict[str, str | None] | None


class PredictResponse(BaseModel):
    model_id: str
    model_sha256: str
    evaluation_id: str | None
    alias: str | None = Field(description="the alias the request named, if any")
    gate_override: str | None = Field(
        default=None,
        description="when an admin pointed that alias at this model although its deployment gate failed: "
        "the reason they wrote (GET /v1/models/aliases/{name}/history)",
    )
    operating_threshold: float
    predictions: list[PredictionOut]


class OutcomeIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"outcome": 1}]})

    outcome: Literal[0, 1]


class PredictionRecord(BaseModel):
    id: str
    model_version_id: str
    created_at: datetime
    probability: float
    label: int
    exit_index: int
    confidence: float
    demographics: dict[str, Any] | None
    outcome: int | None
    outcome_at: datetime | None

    @classmethod
    def of(cls, row: Prediction) -> PredictionRecord:
        return cls(**{name: getattr(row, name) for name in cls.model_fields})


class GroupCount(BaseModel):
    group: str
    n: int
    fraction: float


class DemographicMix(BaseModel):
    attribute: str
    groups: list[GroupCount]
    n_missing: int


class WindowOut(BaseModel):
    days: int | None = Field(description="the last N UTC days, today included; null: since the first prediction")
    last_outcomes: int | None = Field(description="of those, only the model's last K outcomes; null: all")


class LiveGroup(TypedDict):
    group: str
    n: int
    n_pos: int
    n_neg: int
    metrics: Annotated[
        dict[str, Value],
        Field(description="prevalence, tpr, fpr, tnr, fnr, ppv, npv, accuracy, selection_rate, auc, pf"),
    ]


class LiveGrouping(TypedDict):
    attribute: Annotated[str, Field(description='"overall" or an attribute')]
    kind: Literal["overall", "attribute"]
    n_missing: int
    groups: list[LiveGroup]
    gaps: NotRequired[Annotated[dict[str, Gap], Field(description="point values over ok groups (no interval)")]]


class DriftGroup(BaseModel):
    attribute: str
    group: str
    n: int = Field(description="predictions of the group in the window")
    audit_n: int = Field(description="samples of the group in the audit (the training evaluation)")
    psi: float = Field(description="population stability index of the served scores against the audit's (10 bins)")
    ks: float = Field(description="Kolmogorov-Smirnov distance of the binned score distributions")
    exit_rate_shift: float | None = Field(description="largest change of an exit's share; null for single-exit models")


class DriftOut(BaseModel):
    evaluation_id: str = Field(description="the audit: the model's training evaluation")
    groups: list[DriftGroup]


class MonitoringOut(BaseModel):
    model_id: str
    model_sha256: str
    window: WindowOut
    n_predictions: int
    n_with_outcome: int
    exit_counts: list[int] = Field(description="predictions decided at each exit")
    demographics: list[DemographicMix] = Field(description="the demographic mix of the window's predictions")
    status: Literal["ok", "no_outcomes"] = Field(
        description="no_outcomes: no prediction in the window has a ground truth, so there are no metrics"
    )
    metrics: list[LiveGrouping] | None = Field(
        description="subgroup metrics with intervals of the window's outcomes, computed from the live aggregates; "
        "small groups carry status insufficient or undefined (docs/monitoring.md)"
    )
    drift: DriftOut | None = Field(
        description="score and exit-rate drift per group against the audit; null without one"
    )
