"""``/metrics`` on prometheus-client: an API key sees its own organisation's series and nothing else;
the operator token sees every organisation's, labelled, and the process-wide ones (request latency by
route template, the process). Job series are read from the jobs table at scrape time."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from job_helpers import WORKER, organisation_id
from observability.exposition import samples
from pydantic import SecretStr
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.db.engine import transaction
from app.jobs import state
from app.jobs.models import Job
from app.main import create_app
from app.observability.metrics import Telemetry
from app.settings import Settings

TOKEN = "operator-" + "t" * 40


def job(factory: sessionmaker[Session], organisation: str, kind: str, progress: dict | None = None) -> str:
    """A ``kind`` job claimed by the test's worker, with ``progress`` reported."""
    with transaction(factory) as session:
        job_id = state.enqueue(session, organisation_id=organisation, kind=kind, config={}, max_attempts=1).id
    with transaction(factory) as session:
        claimed = state.claim_next(session, WORKER, kinds=[kind])
        assert claimed is not None and claimed.id == job_id
    if progress is not None:
        with transaction(factory) as session:
            state.report_progress(session, job_id, WORKER, progress)
    return job_id


def ingested(factory: sessionmaker[Session], organisation: str, items: int, seconds: float) -> str:
    """An ingestion that succeeded with ``items`` images after ``seconds``."""
    job_id = job(factory, organisation, "ingest")
    with transaction(factory) as session:
        state.finish(session, job_id, WORKER, "succeeded", result={"items": items})
    with transaction(factory) as session:
        finished = session.get(Job, job_id).finished_at
        session.execute(update(Job).where(Job.id == job_id).values(started_at=finished - timedelta(seconds=seconds)))
    return job_id


@pytest.fixture
def operator_client(settings: Settings) -> Iterator[TestClient]:
    with_token = settings.model_copy(update={"metrics_token": SecretStr(TOKEN)})
    with TestClient(create_app(with_token, run_supervisor=False)) as client:
        yield client


def two_organisations(keys, factory: sessionmaker[Session]) -> dict[str, str]:
    ours, theirs = keys.headers("predictor", org="St Elsewhere"), keys.headers("auditor", org="General")
    org_ours, org_theirs = organisation_id(factory, "St Elsewhere"), organisation_id(factory, "General")
    return {
        "ours": ours["Authorization"],
        "theirs": theirs["Authorization"],
        "org_ours": org_ours,
        "org_theirs": org_theirs,
        "train": job(factory, org_ours, "train", {"phase": "train", "fraction": 0.25, "images_per_s": 123.5}),
        "ingest": job(factory, org_theirs, "ingest", {"done": 50, "total": 200, "fraction": 0.25}),
        "ingested": ingested(factory, org_theirs, items=40, seconds=8.0),
    }


def test_a_key_sees_its_own_organisations_series_and_nothing_else(client, keys, session_factory) -> None:
    world = two_organisations(keys, session_factory)
    ours = client.get("/metrics", headers={"Authorization": world["ours"]})
    assert ours.status_code == 200 and ours.headers["content-type"].startswith("text/plain; version=")
    mine = samples(ours.text)
    assert mine['fairaudit_jobs{kind="train",status="running"}'] == 1
    assert mine[f'fairaudit_job_progress_ratio{{job="{world["train"]}",kind="train"}}'] == 0.25
    assert mine[f'fairaudit_training_images_per_second{{job="{world["train"]}"}}'] == 123.5
    for other in (world["org_theirs"], world["ingest"], world["ingested"], world["org_ours"], "organisation="):
        assert other not in ours.text  # nor its own organisation's label: the view is one organisation
    assert "fairaudit_http_request_duration_seconds_bucket" not in ours.text  # every organisation's traffic
    assert "process_cpu_seconds_total" not in ours.text

    theirs = samples(client.get("/metrics", headers={"Authorization": world["theirs"]}).text)
    assert theirs['fairaudit_jobs{kind="ingest",status="running"}'] == 1
    assert theirs['fairaudit_jobs{kind="ingest",status="succeeded"}'] == 1
    assert 0 < theirs[f'fairaudit_ingestion_images_per_second{{job="{world["ingest"]}"}}'] <= 50 / 0.001
    assert theirs["fairaudit_ingested_images_total"] == 40
    assert theirs["fairaudit_ingestion_seconds_total"] == pytest.approx(8.0)
    assert not any(world["train"] in name for name in theirs)


def test_the_operator_token_sees_every_organisation_and_the_process(operator_client, keys, session_factory) -> None:
    client = operator_client
    world = two_organisations(keys, session_factory)
    assert client.get("/v1/cohorts/coh_missing", headers={"Authorization": world["theirs"]}).status_code == 404
    assert client.request("BREW", "/healthz").status_code == 405  # a method of the client's choosing
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    every = samples(response.text)
    ours, theirs = world["org_ours"], world["org_theirs"]
    assert every[f'fairaudit_jobs{{kind="train",organisation="{ours}",status="running"}}'] == 1
    assert every[f'fairaudit_jobs{{kind="ingest",organisation="{theirs}",status="succeeded"}}'] == 1
    assert every[f'fairaudit_ingested_images_total{{organisation="{theirs}"}}'] == 40
    route = "{cohort_id}"
    assert (
        every[
            f'fairaudit_http_request_duration_seconds_count{{method="GET",route="/v1/cohorts/{route}",status_class="4xx"}}'
        ]
        == 1
    )
    assert (
        every['fairaudit_http_request_duration_seconds_count{method="other",route="/healthz",status_class="4xx"}'] == 1
    )
    assert "coh_missing" not in response.text and "BREW" not in response.text  # no series per id or method
    assert "process_cpu_seconds_total" in every


def test_without_a_usable_key_or_token_metrics_are_refused(operator_client, settings) -> None:
    assert operator_client.get("/metrics").status_code == 401
    wrong = operator_client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"})
    assert wrong.status_code == 401 and wrong.headers["content-type"] == "application/problem+json"
    with TestClient(create_app(settings, run_supervisor=False)) as tokenless:  # no token configured: no operator
        assert tokenless.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401


def test_a_short_operator_token_is_refused_at_start_and_job_processes_never_receive_it() -> None:
    with pytest.raises(ValueError, match="metrics_token must be at least 32 characters") as refused:
        Settings(metrics_token="a short secret")
    assert "a short secret" not in str(refused.value)  # a refused secret is not echoed into a log
    settings = Settings(metrics_token=TOKEN)
    shipped = settings.for_job_process()
    assert "metrics_token" not in shipped and TOKEN not in str(shipped)
    assert Settings.model_validate(shipped).data_dir == settings.data_dir  # what a job process does with it


def test_predictions_are_counted_by_organisation_model_and_exit() -> None:
    telemetry = Telemetry()
    telemetry.count_predictions("org_a", "mdl_1", [0, 0, 4, 1])
    telemetry.count_predictions("org_b", "mdl_2", [2])
    mine = samples(telemetry.exposition("org_a").decode())
    assert {k: v for k, v in mine.items() if k.startswith("fairaudit_predictions_total")} == {
        'fairaudit_predictions_total{exit="0",model="mdl_1"}': 2,
        'fairaudit_predictions_total{exit="4",model="mdl_1"}': 1,
        'fairaudit_predictions_total{exit="1",model="mdl_1"}': 1,
    }
    every = telemetry.exposition(None).decode()
    assert re.search(r'fairaudit_predictions_total\{exit="2",model="mdl_2",organisation="org_b"\} 1\.0', every)
