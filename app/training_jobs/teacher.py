"""Checking an ``mfd`` run's teacher where the job is created, before anything is queued.

The teacher must be a model version of the caller's organisation (another organisation's is reported
exactly as a missing one, so ids leak nothing), trained on the same cohort, with the same architecture
(backbone, single/multi-exit, IC pooling and head, image size; the cohort fixes channels and task), and kept with
its PyTorch weights (``keep_weights``): the served ONNX graphs cannot be distilled from.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.modelpkg.manifest import WEIGHTS_FILE
from app.serving.models import ModelVersion
from app.training.config import TrainingConfig, training_fields

#: What must be equal for the teacher's features to line up with the student's at every exit (the IC
#: head's kind only where there are ICs: a single-exit run has none).
ARCHITECTURE = ("backbone", "multi_exit", "ic_pool_size", "ic_head", "image_size")


def teacher_problems(
    session: Session, organisation_id: str, cohort_id: str, config: TrainingConfig
) -> list[dict[str, str]]:
    """Every reason ``config``'s teacher cannot teach this run, as ``{"field", "message"}`` entries."""
    ref = config.teacher_model_version_id
    if ref is None:
        return []
    field = config.teacher_field

    def problem(message: str) -> list[dict[str, str]]:
        return [{"field": field, "message": message}]

    model = session.get(ModelVersion, ref)
    if model is None or model.organisation_id != organisation_id:
        return problem(f"no model version {ref!r} in this organisation")
    problems = []
    if model.cohort_id != cohort_id:
        problems += problem(f"the teacher was trained on cohort {model.cohort_id}, this run is on {cohort_id}")
    teacher = TrainingConfig.model_validate(training_fields(model.config))
    differ = [
        f"{name} {getattr(teacher, name)!r} (this run: {getattr(config, name)!r})"
        for name in ARCHITECTURE
        if getattr(teacher, name) != getattr(config, name) and (name != "ic_head" or config.multi_exit)
    ]
    if differ:
        problems += problem(f"the teacher's architecture differs: {'; '.join(differ)}")
    if WEIGHTS_FILE not in model.files:
        problems += problem(
            f"the teacher was trained without keep_weights, so it has no {WEIGHTS_FILE} to distil from; "
            "retrain it with keep_weights: true"
        )
    return problems
