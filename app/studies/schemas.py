"""The body of ``POST /v1/studies`` and what the study endpoints answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.core.fields import ResourceRef, SafeName
from app.training.config import TrainingConfig

MAX_FOLDS = 20
MAX_SEEDS = 20
MAX_CONFIGS = 20


class StudyConfig(TrainingConfig):
    """A training config as ``POST /v1/jobs`` takes it; its ``cohort_id`` may be left out (the study's),
    and its ``fold_plan`` must be (the study gives every child its own)."""

    cohort_id: ResourceRef | None = None

    def training_config(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"cohort_id"}, exclude_unset=True)


class StudyCreate(BaseModel):
    """K folds × seeds × configs training jobs on one cohort, the same folds for every config."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "cohort_id": "coh_derm_2026",
                    "name": "ERM vs pairwise EO",
                    "configs": [
                        {"method": "erm", "sensitive_attributes": ["skin_type"], "backbone": "small", "epochs": 10},
                        {
                            "method": "pairwise_eo",
                            "sensitive_attributes": ["skin_type"],
                            "backbone": "small",
                            "epochs": 10,
                        },
                    ],
                    "folds": 5,
                    "seeds": 1,
                }
            ]
        },
    )

    cohort_id: ResourceRef
    name: SafeName | None = Field(default=None, max_length=200, description="default: the configs' methods")
    configs: list[StudyConfig] = Field(
        min_length=1, max_length=MAX_CONFIGS, description="training configs to compare; the first is the reference"
    )
    folds: int = Field(default=5, ge=2, le=MAX_FOLDS, description="K of the patient-grouped, stratified K-fold split")
    seeds: int = Field(
        default=1, ge=1, le=MAX_SEEDS, description="training seeds per fold (each config's seed + 0 … seeds − 1)"
    )
    repeat_splits: bool = Field(default=False, description="each seed also draws its own folds")
    allow_failures: bool = Field(default=False, description="pool what succeeded instead of failing the study")
    final_models: bool = Field(
        default=False,
        description="also train each config once on the cohort's own split, the study's evidence attached",
    )


class StudyChild(BaseModel):
    job_id: str
    config: int = Field(description="index into configs")
    seed: int | None = Field(description="the study seed; null for a final model")
    fold: int | None = Field(description="the held-out fold; null for a final model")
    status: str
    fraction: float = Field(description="how far the job has come, 0 to 1")
    error: str | None
    evaluation_id: str | None = Field(description="the evaluation of the held-out fold (or the test split)")
    model_version_id: str | None


class StudyOut(BaseModel):
    id: str
    name: str
    status: str = Field(description="running, succeeded, failed or cancelled")
    cohort_id: str
    folds: int
    seeds: int
    repeat_splits: bool
    allow_failures: bool
    final_models: bool
    val_fraction: float = Field(description="share of each fold's training patients kept for validation")
    configs: list[dict[str, Any]]
    progress: float = Field(description="the children's (and the completion job's) mean progress, 0 to 1")
    children: list[StudyChild]
    completion_job_id: str | None
    result: dict[str, Any] | None = Field(
        description="when succeeded: per config the pooled evaluation, the paired comparison with the reference"
    )
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class StudySummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    status: str
    cohort_id: str
    folds: int
    seeds: int
    created_at: datetime
    finished_at: datetime | None


class StudyList(BaseModel):
    items: list[StudySummary]
    next_cursor: str | None
