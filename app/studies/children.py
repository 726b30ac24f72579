"""What a study's child job is: its config index, seed and fold are in its config (beside the
training config, which ``app.training_jobs.train_job`` reads alone)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.jobs.models import TERMINAL_STATUSES, Job

STUDY_KEYS = ("study_id", "study_config")


@dataclass(frozen=True)
class ChildRole:
    config: int
    seed: int | None  # None: a final model
    fold: int | None

    @property
    def label(self) -> str:
        where = "final model" if self.fold is None else f"fold {self.fold} (seed {self.seed})"
        return f"config {self.config}, {where}"


def role_of(job: Job) -> ChildRole:
    plan = job.config.get("fold_plan")
    config = int(job.config["study_config"])
    if plan is None:
        return ChildRole(config, None, None)
    return ChildRole(config, int(plan["seed"]), int(plan["fold"]))


def child_config(study_id: str, index: int, training: dict[str, Any]) -> dict[str, Any]:
    return {**training, "study_id": study_id, "study_config": index}


def fraction_done(job: Job) -> float:
    """A job's own progress: 1 once ended, its reported fraction while running, 0 while queued."""
    if job.status in TERMINAL_STATUSES:
        return 1.0
    value = (job.progress or {}).get("fraction")
    return min(1.0, max(0.0, float(value))) if isinstance(value, int | float) else 0.0
