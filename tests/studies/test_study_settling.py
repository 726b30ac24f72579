"""Settling a study once its children have ended (the supervisor's duty), with the test as every
child's worker: a failed child fails the study with its reason; with ``allow_failures`` a study whose
children all failed fails too; a finished study gets exactly one completion job however often it is
settled."""

from __future__ import annotations

from job_helpers import WORKER
from sqlalchemy import select
from study_helpers import ready_cohort, study_body

from app.db.engine import transaction
from app.jobs import state
from app.jobs.models import Job
from app.studies.completion import settle_studies
from app.studies.models import Study


def end_children(session_factory, outcomes: dict[str, tuple[str, str | None]]) -> None:
    """Claim every queued job as ``WORKER`` and end each with its (status, error)."""
    with transaction(session_factory) as session:
        while state.claim_next(session, WORKER) is not None:
            pass
    with transaction(session_factory) as session:
        for job_id, (status, error) in outcomes.items():
            state.finish(session, job_id, WORKER, status, error=error, result={"evaluation_id": None})


def test_children_that_end_badly_fail_the_study_and_finished_ones_queue_one_completion(
    client, keys, settings, session_factory, run_jobs
):
    headers = keys.headers()
    cohort_id = ready_cohort(client, headers, run_jobs)
    strict, lenient, fine = (
        client.post("/v1/studies", headers=headers, json=study_body(cohort_id, name=name, **extra)).json()
        for name, extra in (("strict", {}), ("lenient", {"allow_failures": True}), ("fine", {}))
    )
    outcomes, failing = {}, {}
    for study in (strict, lenient):
        *rest, failing[study["name"]] = study["children"]  # the last: its reason is told, not a cancellation's
        outcomes[failing[study["name"]]["job_id"]] = ("failed", "CUDA out of memory")
        outcomes.update({c["job_id"]: ("cancelled", None) for c in rest})
    outcomes.update({c["job_id"]: ("succeeded", None) for c in fine["children"]})
    end_children(session_factory, outcomes)

    for _ in range(2):  # two supervisors (or two ticks) settling the same studies
        with transaction(session_factory) as session:
            settle_studies(session, settings)

    with session_factory() as session:
        ended = {s.name: s for s in session.scalars(select(Study))}
        completions = session.scalars(select(Job).where(Job.kind == "study")).all()
    assert ended["strict"].status == "failed"
    child = failing["strict"]
    assert (
        f"job {child['job_id']} (config {child['config']}, fold {child['fold']} (seed 0)) failed"
        in ended["strict"].error
    )
    assert "CUDA out of memory" in ended["strict"].error
    assert (ended["lenient"].status, ended["lenient"].error) == ("failed", "no child job succeeded")
    assert ended["fine"].status == "running", "its completion job pools and ends it"
    assert [(j.id, j.study_id, j.status) for j in completions] == [
        (ended["fine"].completion_job_id, fine["id"], "queued")
    ]
    shown = client.get(f"/v1/studies/{strict['id']}", headers=headers).json()
    assert shown["status"] == "failed" and shown["progress"] == 1
