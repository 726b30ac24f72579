"""Starting a training job: POST /v1/jobs. The job itself is then read, followed and cancelled through
the generic job endpoints (``app.jobs.router``), which know nothing of training."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.auth.deps import Writer
from app.auth.route import AuthenticatedRoute
from app.core.deps import SessionDep, SettingsDep, mark_resource
from app.core.openapi import problem_responses
from app.jobs.schemas import JobOut
from app.training_jobs.schemas import TrainingJobCreate
from app.training_jobs.service import start_training

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=AuthenticatedRoute)


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    summary="Start a training job",
    responses=problem_responses(404, 409, notes={409: "the cohort is not ready"}),
)
def start_training_job(
    body: TrainingJobCreate, principal: Writer, session: SessionDep, settings: SettingsDep, request: Request
) -> JobOut:
    """Validate the training config against the cohort (every problem named at once), then queue it."""
    job = start_training(session, settings, principal, body)
    mark_resource(request, job.id)
    return JobOut.of(job)
