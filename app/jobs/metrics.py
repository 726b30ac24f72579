"""The jobs table as Prometheus series, read at scrape time (``app.observability.metrics``).

Jobs run in processes of their own (or on a Ray cluster), which write their progress to the job row;
reading the rows when ``/metrics`` is scraped gives one truth for every process and replica, with
nothing to aggregate. Every read is on a read-only connection (``app.db.engine.read_only``): a scrape
never takes or waits for SQLite's write lock.

- ``fairaudit_jobs{kind,status}``: jobs by kind and status.
- ``fairaudit_job_progress_ratio{kind,job}``: the fraction done of each running job.
- ``fairaudit_ingestion_images_per_second{job}``: each running ingestion's images decoded per second
  since its attempt started.
- ``fairaudit_training_images_per_second{job}``: each running training's rate over its current epoch, as
  the trainer measures it.
- ``fairaudit_ingested_images_total`` and ``fairaudit_ingestion_seconds_total``: images and seconds of
  the ingestions that succeeded; ``rate(images) / rate(seconds)`` is the throughput over any window,
  also of ingestions short enough to start and end between two scrapes.

Each carries the job's ``organisation`` label (``app.observability.metrics`` scopes and drops it).
Running jobs are bounded by the supervisors' capacity, so the per-job series are too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import Engine, Select, func, select

from app.db.base import utcnow
from app.jobs.models import Job
from app.observability.metrics import ORGANISATION


class JobMetrics:
    """``OrganisationCollector`` over the jobs table."""

    def __init__(self, read_engine: Engine) -> None:
        self.engine = read_engine

    def collect_for(self, organisation_id: str | None) -> Iterator[Metric]:
        def scoped(query: Select) -> Select:
            return query if organisation_id is None else query.where(Job.organisation_id == organisation_id)

        counts = select(Job.organisation_id, Job.kind, Job.status, func.count()).group_by(
            Job.organisation_id, Job.kind, Job.status
        )
        running = select(Job.organisation_id, Job.kind, Job.id, Job.started_at, Job.progress).where(
            Job.status == "running"
        )
        ingested = select(Job.organisation_id, Job.started_at, Job.finished_at, Job.result).where(
            Job.kind == "ingest", Job.status == "succeeded"
        )
        with self.engine.connect() as conn:
            count_rows = conn.execute(scoped(counts)).all()
            running_rows = conn.execute(scoped(running)).all()
            ingested_rows = conn.execute(scoped(ingested)).all()
        now = utcnow()

        jobs = GaugeMetricFamily("fairaudit_jobs", "Jobs by kind and status.", labels=[ORGANISATION, "kind", "status"])
        for org, kind, status, n in count_rows:
            jobs.add_metric([org, kind, status], n)
        yield jobs
        yield from _running(running_rows, now)
        yield from _ingested(ingested_rows)


def _running(rows: Sequence[Any], now: datetime) -> Iterator[Metric]:
    progress = GaugeMetricFamily(
        "fairaudit_job_progress_ratio", "Fraction done of each running job.", labels=[ORGANISATION, "kind", "job"]
    )
    ingest = GaugeMetricFamily(
        "fairaudit_ingestion_images_per_second",
        "Images decoded per second by each running ingestion, since its attempt started.",
        labels=[ORGANISATION, "job"],
    )
    train = GaugeMetricFamily(
        "fairaudit_training_images_per_second",
        "Training images per second of each running training over its current epoch.",
        labels=[ORGANISATION, "job"],
    )
    for org, kind, job_id, started_at, state in rows:
        state = state or {}
        if isinstance(state.get("fraction"), int | float):
            progress.add_metric([org, kind, job_id], float(state["fraction"]))
        if kind == "ingest" and isinstance(state.get("done"), int) and started_at is not None:
            elapsed = (now - started_at).total_seconds()
            if elapsed > 0:
                ingest.add_metric([org, job_id], state["done"] / elapsed)
        elif kind == "train" and isinstance(state.get("images_per_s"), int | float):
            train.add_metric([org, job_id], float(state["images_per_s"]))
    yield from (progress, ingest, train)


def _ingested(rows: Sequence[Any]) -> Iterator[Metric]:
    images: dict[str, float] = defaultdict(float)
    seconds: dict[str, float] = defaultdict(float)
    for org, started_at, finished_at, result in rows:
        if started_at is None or finished_at is None or not isinstance((result or {}).get("items"), int):
            continue
        images[org] += result["items"]
        seconds[org] += max(0.0, (finished_at - started_at).total_seconds())
    images_total = CounterMetricFamily(
        "fairaudit_ingested_images", "Images of the ingestions that succeeded.", labels=[ORGANISATION]
    )
    seconds_total = CounterMetricFamily(
        "fairaudit_ingestion_seconds", "Seconds spent by the ingestions that succeeded.", labels=[ORGANISATION]
    )
    for org in images:
        images_total.add_metric([org], images[org])
        seconds_total.add_metric([org], seconds[org])
    yield from (images_total, seconds_total)
