"""Which function runs each kind of job. Imported lazily inside the job process, so the API process
never imports torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from app.jobs.context import Completion, JobContext

HANDLERS = {
    "ingest": "app.cohorts.ingestion_job:run_ingestion",
    "train": "app.training_jobs.train_job:run_training_job",
    "evaluate": "app.training_jobs.evaluate_job:run_evaluation_job",
    "audit": "app.fairness.audit_job:run_audit_job",
}


def resolve(kind: str) -> Callable[[JobContext], Completion]:
    module_name, _, attr = HANDLERS[kind].partition(":")
    handler: Callable[[JobContext], Completion] = getattr(importlib.import_module(module_name), attr)
    return handler
