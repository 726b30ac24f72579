"""Model versions, per-organisation aliases and served predictions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TimestampMixin, id_column

PREDICTION_ID_PREFIX = "prd"


class ModelVersion(TimestampMixin, Base):
    """The exported ONNX stages of one successful training job, frozen thresholds included."""

    __tablename__ = "model_versions"

    id: Mapped[str] = id_column("mdl")
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), unique=True)
    cohort_id: Mapped[str | None] = mapped_column(ForeignKey("cohorts.id"))
    method: Mapped[str] = mapped_column(String(64))
    backbone: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))  # of model.json, which lists every file's hash
    files: Mapped[dict[str, Any]]
    thresholds: Mapped[dict[str, Any]]
    config: Mapped[dict[str, Any]]
    stage: Mapped[str] = mapped_column(String(16), default="candidate")
    # the last outcome sequence number handed out (``app.serving.aggregates``): "the last K outcomes"
    last_outcome_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class ModelAlias(TimestampMixin, Base):
    """A named pointer (e.g. ``production``) to a model version, unique per organisation.

    ``override_reason``: set while the alias points where an admin put it against a failed gate, so
    every prediction through the alias can say so without reading the history.
    """

    __tablename__ = "model_aliases"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    model_version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id"))
    override_reason: Mapped[str | None] = mapped_column(Text)


class AliasChange(TimestampMixin, Base):
    """One move of an alias: who, when, from which version to which, the gate's result and, for an
    override, the admin's written reason. Rows are only ever added."""

    __tablename__ = "alias_history"
    __table_args__ = (Index("ix_alias_history_lookup", "organisation_id", "alias", "created_at"),)

    id: Mapped[str] = id_column("alh")
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(64))
    from_model_id: Mapped[str | None] = mapped_column(ForeignKey("model_versions.id"))
    to_model_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id"), index=True)
    api_key_id: Mapped[str | None] = mapped_column(String(32))
    gate: Mapped[str] = mapped_column(String(16))  # pass, fail, insufficient or "no policy"
    gate_result: Mapped[dict[str, Any]]
    override_reason: Mapped[str | None] = mapped_column(Text)


class Prediction(TimestampMixin, Base):
    """One served image. ``probability``/``label``/``outcome`` keep one meaning per task: binary, the
    positive class's probability, the thresholded label, the 0/1 truth; multiclass, the predicted
    class's probability, its index, the true class's index; multilabel, the largest finding
    probability, 1 when any finding was decided present, 1 when any reported finding is present."""

    __tablename__ = "predictions"
    __table_args__ = (Index("ix_predictions_outcome_seq", "model_version_id", "outcome_seq"),)

    id: Mapped[str] = id_column(PREDICTION_ID_PREFIX)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    model_version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id"), index=True)
    probability: Mapped[float]
    label: Mapped[int]
    exit_index: Mapped[int]
    confidence: Mapped[float]
    demographics: Mapped[dict[str, Any] | None]
    # multiclass and multilabel models: the served probabilities (and decisions) of every class or
    # finding, in the model's order (``app.serving.outputs``); null for binary models
    output: Mapped[dict[str, Any] | None]
    outcome: Mapped[int | None]
    # multilabel models: the ground truth per finding (1, 0, or null: unknown), in the model's order
    outcome_findings: Mapped[list[Any] | None]
    outcome_at: Mapped[datetime | None]
    outcome_seq: Mapped[int | None] = mapped_column(BigInteger)  # the model's nth outcome (a correction is a new one)


class MonitoringCell(Base):
    """One counter of the live monitoring aggregates (``app.serving.aggregates``): how many of a
    model's predictions or outcomes of one group in one bucket (all time, a UTC day, or a block of
    outcome numbers; -1 in ``day`` or ``block`` spans them all) fall in ``cell`` (``n``, ``exit:k``,
    ``score:b``, ``tp``/``fp``/``tn``/``fn``, ``pos:b``/``neg:b``). Only ever changed by SQL
    increments, so concurrent writers keep exact counts."""

    __tablename__ = "monitoring_cells"
    __table_args__ = (
        UniqueConstraint("model_version_id", "day", "block", "attribute", "group", "cell", name="uq_monitoring_cell"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    model_version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    day: Mapped[int]  # days since 1970-01-01 (UTC) of the prediction or the outcome; -1: every day
    block: Mapped[int]
    attribute: Mapped[str] = mapped_column(String(64))  # "overall" or a demographic attribute
    group: Mapped[str] = mapped_column(String(128))
    cell: Mapped[str] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(BigInteger)
