"""Request and response bodies of the model registry, prediction and monitoring endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired, cast

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StringConstraints, Tag, model_validator
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from app.fairness.report_schema import Gap, Value
from app.modelpkg.manifest import DEFAULT_IC_HEAD, Decision, IcHeadKind
from app.modelpkg.task import MAX_FINDINGS, ClassName
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
    ic_head: IcHeadKind | None = Field(
        description="the internal classifiers' head: paper (the paper's) or pooled (the cheap head that pools "
        "first); null for a single-exit model"
    )
    evaluation_id: str | None = Field(description="the training job's evaluation (test split)")

    @classmethod
    def of(cls, model: ModelVersion, aliases: list[str], evaluation_id: str | None) -> ModelOut:
        own = {name for name in cls.model_fields if name not in ("aliases", "evaluation_id", "ic_head")}
        data = {name: getattr(model, name) for name in own}
        return cls(**data, ic_head=ic_head_of(model), aliases=aliases, evaluation_id=evaluation_id)


def ic_head_of(model: ModelVersion) -> IcHeadKind | None:
    """The IC head a model version was trained with, as its model.json records it: null with one exit
    (one registered threshold), else the config's ``ic_head``; a config stored before the option
    existed had the paper's head."""
    if len((model.thresholds or {}).get("exits") or []) <= 1:
        return None
    return cast(IcHeadKind, (model.config or {}).get("ic_head", DEFAULT_IC_HEAD))  # validated when trained


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


class MulticlassPredictionOut(PredictionOut):
    probability: float = Field(description="probability of the predicted class at the exit that decided")
    label: int = Field(description="index of the predicted class in the model's class order")
    confidence: float = Field(description="the largest class probability at that exit")
    probabilities: dict[str, float] = Field(description="class -> softmax probability, in the model's order; sums to 1")
    predicted_class: str = Field(
        description="argmax of the probabilities, or of probability / class threshold under that rule"
    )


class FindingOut(BaseModel):
    probability: float = Field(description="sigmoid of the finding's logit at the exit that decided")
    decision: Literal[0, 1] = Field(description="1 when probability >= threshold")
    threshold: float = Field(description="the finding's frozen threshold (chosen on validation)")


class MultilabelPredictionOut(BaseModel):
    id: str = Field(description="prediction id, for POST /v1/predictions/{id}/outcome")
    image: str
    findings: dict[str, FindingOut] = Field(description="finding -> probability and decision, in the model's order")
    exit_index: int = Field(description="0-based exit that decided; the last exit is the final head")
    confidence: float = Field(
        description="the least confident finding's max(probability, 1 - probability) at that exit"
    )
    demographics: dict[str, str | None] | None


class PredictResponse(BaseModel):
    """A binary model's predictions (no ``task`` key: the format every binary client already reads)."""

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


class _ClassPredictResponse(BaseModel):
    model_id: str
    model_sha256: str
    evaluation_id: str | None
    alias: str | None = Field(description="the alias the request named, if any")
    gate_override: str | None = Field(description=PredictResponse.model_fields["gate_override"].description)
    decision: Decision = Field(description="the model's frozen decision rule and thresholds (model.json decision)")


class MulticlassPredictResponse(_ClassPredictResponse):
    task: Literal["multiclass"] = "multiclass"
    classes: list[str] = Field(description="the class names, in the model's order (label is an index into it)")
    predictions: list[MulticlassPredictionOut]


class MultilabelPredictResponse(_ClassPredictResponse):
    task: Literal["multilabel"] = "multilabel"
    findings: list[str] = Field(description="the finding names, in the model's order")
    predictions: list[MultilabelPredictionOut]


def _task_tag(value: Any) -> str:
    """Which response a value is: its ``task``, and binary when it has none."""
    task = value.get("task") if isinstance(value, dict) else getattr(value, "task", None)
    return task or "binary"


AnyPredictResponse = Annotated[
    Annotated[PredictResponse, Tag("binary")]
    | Annotated[MulticlassPredictResponse, Tag("multiclass")]
    | Annotated[MultilabelPredictResponse, Tag("multilabel")],
    Discriminator(_task_tag),
]


class OutcomeIn(BaseModel):
    """The ground truth of a prediction, in the form its model's task takes (checked against the model)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"outcome": 1}, {"outcome": "melanoma"}, {"findings": {"effusion": 1, "oedema": None}}]
        }
    )

    outcome: Literal[0, 1] | ClassName | None = Field(
        default=None, description="binary models: 0 or 1; multiclass models: the true class's name"
    )
    findings: dict[ClassName, Literal[0, 1] | None] | None = Field(
        default=None,
        max_length=MAX_FINDINGS,
        description="multilabel models: finding -> 1 (present), 0 (absent) or null (unknown); "
        "a finding left out is unknown; at least one must be 0 or 1",
    )

    @model_validator(mode="after")
    def _one_form(self) -> OutcomeIn:
        if (self.outcome is None) == (self.findings is None):
            raise ValueError("give outcome (binary or multiclass models) or findings (multilabel models), not both")
        return self


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
        return cls(**{name: getattr(row, name) for name in PredictionRecord.model_fields})


class MulticlassPredictionRecord(PredictionRecord):
    task: Literal["multiclass"] = "multiclass"
    probabilities: dict[str, float] = Field(description="class -> probability as served")
    predicted_class: str
    outcome_class: str | None = Field(description="the true class (outcome is its index)")


class MultilabelPredictionRecord(PredictionRecord):
    task: Literal["multilabel"] = "multilabel"
    findings: dict[str, FindingOut] = Field(description="finding -> probability and decision as served")
    outcome_findings: dict[str, Literal[0, 1] | None] | None = Field(
        description="finding -> the recorded truth (null: unknown); outcome is 1 when any is present"
    )


AnyPredictionRecord = Annotated[
    Annotated[PredictionRecord, Tag("binary")]
    | Annotated[MulticlassPredictionRecord, Tag("multiclass")]
    | Annotated[MultilabelPredictionRecord, Tag("multilabel")],
    Discriminator(_task_tag),
]


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


class ClassRates(TypedDict):
    n_pos: int
    n_neg: int
    metrics: Annotated[
        dict[str, Value],
        Field(description="one-vs-rest: prevalence, tpr, fpr, tnr, fnr, ppv, npv, selection_rate"),
    ]


class ClassGroup(TypedDict):
    group: str
    n: int
    metrics: Annotated[dict[str, Value], Field(description="accuracy: the confusion matrix's trace over its total")]
    classes: Annotated[dict[str, ClassRates], Field(description="class -> its one-vs-rest counts and rates")]


class ClassGap(TypedDict):
    value: float | None
    status: Literal["ok", "insufficient", "undefined"]
    classes_used: Annotated[list[str], Field(description="classes whose gap is ok (the mean is over these)")]
    classes_left_out: list[str]


class ClassGrouping(TypedDict):
    attribute: Annotated[str, Field(description='"overall" or an attribute')]
    kind: Literal["overall", "attribute"]
    n_missing: int
    groups: list[ClassGroup]
    gaps: NotRequired[
        Annotated[
            dict[str, ClassGap],
            Field(description="eopp0, eopp1, eodd: the mean over classes of each class's gap (docs/metrics.md)"),
        ]
    ]
    class_gaps: NotRequired[
        Annotated[dict[str, dict[str, Gap]], Field(description="class -> its eopp0, eopp1, eodd over the ok groups")]
    ]


class FindingMonitoring(TypedDict):
    finding: str
    n_with_outcome: Annotated[int, Field(description="outcomes in the window where this finding's truth is known")]
    metrics: Annotated[
        list[LiveGrouping] | None, Field(description="as a binary model's metrics; null without outcomes")
    ]


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


class MulticlassMonitoringOut(MonitoringOut):
    task: Literal["multiclass"] = "multiclass"
    classes: list[str] = Field(description="the class names, in the model's order")
    metrics: None = Field(default=None, description="binary models only; see class_metrics")
    class_metrics: list[ClassGrouping] | None = Field(
        description="per grouping: accuracy and one-vs-rest rates per class and group, with Wilson intervals, and "
        "the multi-class gaps; null without outcomes (docs/monitoring.md)"
    )


class MultilabelMonitoringOut(MonitoringOut):
    task: Literal["multilabel"] = "multilabel"
    findings: list[str] = Field(description="the finding names, in the model's order")
    metrics: None = Field(default=None, description="binary models only; see finding_metrics")
    finding_metrics: list[FindingMonitoring] = Field(description="each finding's live metrics, as a binary model's")


AnyMonitoringOut = Annotated[
    Annotated[MonitoringOut, Tag("binary")]
    | Annotated[MulticlassMonitoringOut, Tag("multiclass")]
    | Annotated[MultilabelMonitoringOut, Tag("multilabel")],
    Discriminator(_task_tag),
]
