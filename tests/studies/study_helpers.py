"""A tiny patient-grouped cohort and study requests that train in seconds (small backbone, 1 epoch)."""

from __future__ import annotations

from typing import Any

from archives import TRAIN, make_zip, upload
from fastapi.testclient import TestClient

ONE_EPOCH = {**TRAIN, "epochs": 1}
REFERENCE = {**ONE_EPOCH, "method": "erm"}
CANDIDATE = ONE_EPOCH  # fair_multi_exit_pairwise_eo: early exits, so Δ compute is not 0


def ready_cohort(client: TestClient, headers: dict[str, str], run_jobs: Any, n: int = 80) -> str:
    """``n`` images of ``n/2`` patients (each with a negative and a positive image), sex as the group."""
    cohort = upload(client, headers, make_zip(n)).json()
    run_jobs()
    return str(cohort["id"])


def study_body(cohort_id: str, **overrides: Any) -> dict[str, Any]:
    return {"cohort_id": cohort_id, "name": "tiny", "configs": [REFERENCE, CANDIDATE], "folds": 2, **overrides}


def drive(client: TestClient, headers: dict[str, str], run_jobs: Any, study_id: str) -> dict[str, Any]:
    """Run jobs until the study has ended: the children, then (queued by the supervisor's duty once they
    have all ended) the completion job."""
    for _ in range(3):
        run_jobs(timeout=400)
        study = client.get(f"/v1/studies/{study_id}", headers=headers).json()
        if study["status"] != "running":
            return dict(study)
    raise AssertionError(f"study {study_id} still running: {study}")
