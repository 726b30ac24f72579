"""``fairaudit serve`` with several worker processes (``FAIRAUDIT_WORKERS``), over real sockets: each
worker serves predictions, jobs are run by the one supervisor in the parent, and a revoked key or a
changed role takes effect in every worker within the key cache's second."""

from __future__ import annotations

import json
import time

import httpx
import psutil
from archives import CONFIG, make_zip
from live_server import live_server, wait_for
from serving_helpers import multipart, noise_images
from sqlalchemy import func, select, update

from app.audit.models import AuditLogEntry
from app.auth.models import ApiKey
from app.db.engine import transaction
from app.jobs.models import JobEvent
from app.serving.models import Prediction

WORKERS = {"FAIRAUDIT_WORKERS": "2"}
CACHE_BOUND_S = 1.0  # the documented bound: FAIRAUDIT_KEY_CACHE_SECONDS is at most 1


def _workers(pid: int) -> list[psutil.Process]:
    """The server's worker processes: the children uvicorn spawned (not multiprocessing's tracker)."""
    children = psutil.Process(pid).children()
    return [c for c in children if "spawn_main" in " ".join(c.cmdline())]


def _get(url: str, path: str, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=60) as http:
        return http.get(path, headers=headers)


def _predict(url: str, path: str, headers: dict[str, str]) -> httpx.Response:
    """On a new connection each time, so that requests land on both workers' accepts."""
    with httpx.Client(base_url=url, timeout=60) as http:
        return http.post(path, headers=headers, **multipart(noise_images(1)))


def test_two_workers_predict_and_the_parent_runs_each_job_once(served, keys, settings, session_factory):
    predictor = keys.headers("predictor")
    path = f"/v1/models/{served.id}/predict"
    with live_server(settings, extra_env=WORKERS) as server:
        workers = wait_for(lambda: len(_workers(server.pid)) == 2 and _workers(server.pid), timeout=60)
        answers = [_predict(server.url, path, predictor) for _ in range(12)]
        assert [a.status_code for a in answers] == [200] * 12, answers[0].text
        with httpx.Client(base_url=server.url, timeout=60) as http:
            cohort = http.post(
                "/v1/cohorts",
                headers=served.headers,
                files={"archive": ("cohort.zip", make_zip(20))},
                data={"config": json.dumps(CONFIG)},
            )
            assert cohort.status_code == 202, cohort.text
            job_id = cohort.json()["ingest_job_id"]

            def ended() -> dict | None:
                job = http.get(f"/v1/jobs/{job_id}", headers=served.headers).json()
                return job if job["status"] not in ("queued", "running") else None

            job = wait_for(ended, timeout=120)
        assert job["status"] == "succeeded", job
        assert all(w.is_running() for w in workers), "no worker died (and was replaced) during the test"
    ids = {p["id"] for a in answers for p in a.json()["predictions"]}
    with session_factory() as session:
        stored = session.scalar(select(func.count()).select_from(Prediction).where(Prediction.id.in_(ids)))
        audited = session.scalar(
            select(func.count())
            .select_from(AuditLogEntry)
            .where(AuditLogEntry.action == "POST /v1/models/{model_ref}/predict", AuditLogEntry.status_code == 200)
        )
        runs = [
            e.data
            for e in session.scalars(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type == "state"))
            if e.data.get("status") == "running" and "worker" in e.data
        ]
    assert (len(ids), stored, audited) == (12, 12, 12), "one prediction row and one audit row per request"
    assert [r["attempt"] for r in runs] == [1], "the job ran once"
    assert f":{server.pid}:" in runs[0]["worker"], "claimed by the parent's supervisor, not by a worker"


def test_revocation_and_role_changes_reach_every_worker_within_a_second(served, settings, session_factory, keys):
    headers = keys.headers("auditor")
    key_prefix = headers["Authorization"].split("_")[1]
    read, predict = f"/v1/models/{served.id}", f"/v1/models/{served.id}/predict"

    def change(**values: object) -> None:
        """Behind the servers' backs, as an operator's SQL would: no process is told."""
        with transaction(session_factory) as session:
            session.execute(update(ApiKey).where(ApiKey.prefix == key_prefix).values(**values))
        time.sleep(CACHE_BOUND_S)

    with live_server(settings, extra_env=WORKERS) as server:
        wait_for(lambda: len(_workers(server.pid)) == 2, timeout=60)
        ok = [_get(server.url, read, headers).status_code for _ in range(6)]  # new connections: both workers
        assert ok == [200] * 6

        change(role="predictor")  # may predict, may not read
        refused = [_get(server.url, read, headers) for _ in range(6)]
        assert [r.status_code for r in refused] == [403] * 6, refused[0].text
        assert _predict(server.url, predict, headers).status_code == 200

        change(revoked_at=func.now())
        revoked = [_predict(server.url, predict, headers) for _ in range(6)]
        assert [r.status_code for r in revoked] == [401] * 6, revoked[0].text
