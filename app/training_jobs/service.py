"""Starting training jobs: the config is validated against the cohort before anything is queued."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.auth.service import Principal
from app.cohorts import service as cohorts
from app.cohorts.cache import CohortArrays, load_cohort_arrays
from app.cohorts.storage import cache_dir
from app.core.errors import InputError
from app.db.base import new_id
from app.jobs import handlers, state
from app.jobs.models import Job
from app.settings import Settings
from app.training.config import TrainingConfig
from app.training.validation import validate_training_config
from app.training_jobs.schemas import TrainingJobCreate
from app.training_jobs.teacher import teacher_problems

handlers.register("train", "app.training_jobs.train_job:run_training_job")
# Queued by app.fairness.service (POST /v1/models/{id}/evaluate); run here, next to training's export.
handlers.register("evaluate", "app.training_jobs.evaluate_job:run_evaluation_job")


def weights_dir(settings: Settings) -> Path:
    """Pretrained weights may only be read from here: a request must not name arbitrary server files."""
    return (settings.data_dir / "weights").resolve()


def _weights_file(settings: Settings, name: object) -> Path:
    """The file ``name`` names in the weights folder. Resolved before the config is validated, so a
    request learns nothing about files elsewhere (not even whether they exist) nor where the folder is."""
    root = weights_dir(settings)
    try:
        path = (root / name).resolve() if isinstance(name, str) else root
        found = path.is_relative_to(root) and path.is_file()
    except (OSError, ValueError):  # a NUL byte, a name too long for the filesystem
        found = False
    if not found:
        raise InputError(
            "pretrained_weights must name a file in the server's weights folder",
            [{"field": "pretrained_weights", "message": f"{name!r} is not a file in the weights folder"}],
        )
    return path


def checked_config(settings: Settings, arrays: CohortArrays, data: dict[str, Any]) -> TrainingConfig:
    """A training request's config as a job will train with it: weights resolved in the weights folder,
    checked against the cohort (every problem named at once). Studies check each of theirs here too."""
    data = dict(data)
    if data.get("pretrained_weights") is not None:
        data["pretrained_weights"] = _weights_file(settings, data["pretrained_weights"])
    return validate_training_config(data, arrays)


def start_training(session: Session, settings: Settings, principal: Principal, body: TrainingJobCreate) -> Job:
    cohort = cohorts.require_ready(session, principal.organisation_id, body.cohort_id)
    config = checked_config(settings, load_cohort_arrays(cache_dir(settings, cohort.id)), body.training_config())
    problems = teacher_problems(session, principal.organisation_id, cohort.id, config)
    if problems:
        raise InputError("the mfd teacher cannot be used", problems)
    return state.enqueue(
        session,
        organisation_id=principal.organisation_id,
        kind="train",
        config=config.model_dump(mode="json"),
        cohort_id=cohort.id,
        method=config.method,
        model_version_id=new_id("mdl"),
        max_attempts=settings.max_attempts,
    )
