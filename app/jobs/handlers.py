"""Which function runs each kind of job, and what a failed one leaves behind. Imported lazily (a
handler inside the job process), so the API process never imports torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from app.jobs.context import Completion, JobContext

HANDLERS = {
    "ingest": "app.cohorts.ingestion_job:run_ingestion",
    "train": "app.training_jobs.train_job:run_training_job",
    "evaluate": "app.training_jobs.evaluate_job:run_evaluation_job",
    "audit": "app.fairness.audit_job:run_audit_job",
}


# Rows that wait on a job of this kind, marked failed with the job's reason when it fails or is
# cancelled: ``hook(session, job_id, reason)``, run by ``app.jobs.state`` in the transaction that ends
# the job, whichever process ends it (the job's own, the supervisor after a crash, the API cancelling
# a queued job). So no such row stays "running" after its job.
ON_FAILURE = {
    "audit": "app.fairness.storage:fail_evaluation_of_job",
}
FailureHook = Callable[[Session, str, str], None]


def resolve(kind: str) -> Callable[[JobContext], Completion]:
    handler: Callable[[JobContext], Completion] = _load(HANDLERS[kind])
    return handler


def failure_hook(kind: str) -> FailureHook | None:
    hook: FailureHook | None = _load(ON_FAILURE[kind]) if kind in ON_FAILURE else None
    return hook


def _load(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    return getattr(importlib.import_module(module_name), attr)
