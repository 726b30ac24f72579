"""Prometheus metrics, with ``prometheus-client``, in two views: the operator's and an organisation's.

Series (all prefixed ``fairaudit_``):

- ``http_request_duration_seconds{method,route,status_class}``: latency histogram, by route template;
- ``predictions_total{organisation,model,exit}``: images predicted, by the exit (0-based) they left at;
- whatever the domains' collectors add, read from the database at scrape time (``app.jobs.metrics``: jobs
  by kind and status, throughput of running jobs, images ingested): job processes are separate
  processes, and their rows are where their work is recorded, so a scrape reads them there instead of
  each process keeping counters of its own.
- the process's CPU, memory and open files (``process_*``, operator view only).

Who sees what (``app.ops.metrics_access``): the operator token (``FAIRAUDIT_METRICS_TOKEN``) sees every
series, each organisation's labelled ``organisation``; an API key sees its own organisation's series only,
without that label, and none of the process-wide ones (latency, process), which mix every organisation's
traffic. An organisation's view is built per scrape from the same collectors, filtered by the
organisation (in SQL for the database's, by label for the in-process counters), so another
organisation's rows never reach it.

Registries are per app, not ``prometheus_client``'s global one: tests build many apps in one process,
and each must count only its own requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.metrics_core import Metric

ORGANISATION = "organisation"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# any other method is counted as "other": a client picks the method, and each would be a new series
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class OrganisationCollector(Protocol):
    """A source of organisation-owned series."""

    def collect_for(self, organisation_id: str | None) -> Iterable[Metric]:
        """Metric families whose every sample has an ``organisation`` label: one organisation's only, or
        (``None``) every organisation's."""
        ...


class Telemetry:
    """The app's metrics: what requests and predictions record, and the two expositions."""

    def __init__(self, collectors: Sequence[OrganisationCollector] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=False)  # the operator's view
        self._request_seconds = Histogram(
            "fairaudit_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response, by route template and status class.",
            ["method", "route", "status_class"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._predictions = Counter(
            "fairaudit_predictions",
            "Images predicted, by model version and the exit (0-based) each left the early-exit chain at.",
            [ORGANISATION, "model", "exit"],
            registry=None,  # exposed through the organisation views below
        )
        self._request_children: dict[tuple[str, str, int], Histogram] = {}
        self._prediction_children: dict[tuple[str, str, int], Counter] = {}
        self._collectors: list[OrganisationCollector] = [_InProcess(self._predictions), *collectors]
        ProcessCollector(registry=self.registry)
        self.registry.register(_OrganisationView(self._collectors, None))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method if method in KNOWN_METHODS else "other", route, status // 100)
        child = self._request_children.get(key)
        if child is None:  # labels() checks its arguments and takes a lock on every call: once per series
            child = self._request_children[key] = self._request_seconds.labels(*key[:2], f"{key[2]}xx")
        child.observe(seconds)

    def count_predictions(self, organisation_id: str, model_id: str, exits: Iterable[int]) -> None:
        """Count a prediction request's images by exit (children kept as in ``observe_request``)."""
        per_exit: dict[int, int] = {}
        for exit_index in exits:
            per_exit[exit_index] = per_exit.get(exit_index, 0) + 1
        for exit_index, n in per_exit.items():
            key = (organisation_id, model_id, exit_index)
            child = self._prediction_children.get(key)
            if child is None:
                child = self._prediction_children[key] = self._predictions.labels(*key[:2], str(exit_index))
            child.inc(n)

    def exposition(self, organisation_id: str | None) -> bytes:
        """The Prometheus text format: every series (``None``, the operator), or one organisation's."""
        if organisation_id is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_OrganisationView(self._collectors, organisation_id))
        return generate_latest(registry)


class _InProcess:
    """Organisation-labelled series counted in this process, as an ``OrganisationCollector``."""

    def __init__(self, *metrics: Counter) -> None:
        self.metrics = metrics

    def collect_for(self, organisation_id: str | None) -> Iterator[Metric]:
        for metric in self.metrics:
            yield from metric.collect()  # _OrganisationView keeps the organisation's samples only


class _OrganisationView:
    """A registry collector over organisation-owned series. Scoped to one organisation, it keeps only
    samples labelled with it (whatever a collector returned) and drops the then redundant label."""

    def __init__(self, collectors: Sequence[OrganisationCollector], organisation_id: str | None) -> None:
        self.collectors = collectors
        self.organisation_id = organisation_id

    def describe(self) -> list[Metric]:  # nothing to describe up front: collecting reads the database
        return []

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            for family in collector.collect_for(self.organisation_id):
                yield family if self.organisation_id is None else _scoped(family, self.organisation_id)


def _scoped(family: Metric, organisation_id: str) -> Metric:
    scoped = Metric(family.name, family.documentation, family.type, family.unit)
    scoped.samples = [
        s._replace(labels={k: v for k, v in s.labels.items() if k != ORGANISATION})
        for s in family.samples
        if s.labels.get(ORGANISATION) == organisation_id
    ]
    return scoped
