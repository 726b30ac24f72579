"""Starting training jobs: the config is validated against the cohort before anything is queued."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from app.auth.service import Principal
from app.cohorts import service as cohorts
from app.cohorts.cache import load_cohort_arrays
from app.cohorts.storage import cache_dir
from app.core.errors import InputError
from app.jobs import state
from app.jobs.models import Job
from app.settings import Settings
from app.training.validation import validate_training_config
from app.training_jobs.schemas import TrainingJobCreate


def weights_dir(settings: Settings) -> Path:
    """Pretrained weights may only be read from here: a request must not name arbitrary server files."""
    return (settings.data_dir / "weights").resolve()


def start_training(session: Session, settings: Settings, principal: Principal, body: TrainingJobCreate) -> Job:
    cohort = cohorts.require_ready(session, principal.organisation_id, body.cohort_id)
    arrays = load_cohort_arrays(cache_dir(settings, cohort.id))
    config = validate_training_config(body.training_config(), arrays)
    if config.pretrained_weights is not None:
        path = (weights_dir(settings) / config.pretrained_weights).resolve()
        if not path.is_relative_to(weights_dir(settings)) or not path.is_file():
            raise InputError(
                "pretrained_weights must name a file in the server's weights folder",
                [
                    {
                        "field": "pretrained_weights",
                        "message": f"{config.pretrained_weights} not found under {weights_dir(settings)}",
                    }
                ],
            )
        config = config.model_copy(update={"pretrained_weights": path})
    return state.enqueue(
        session,
        organisation_id=principal.organisation_id,
        kind="train",
        config=config.model_dump(mode="json"),
        cohort_id=cohort.id,
        method=config.method,
        max_attempts=settings.max_attempts,
    )
