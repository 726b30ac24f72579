"""Which function runs each kind of job, and what a failed one leaves behind: a registry the domains
fill, so the job machinery names none.

A domain registers every kind of job it owns where it queues it, e.g.
``register("ingest", "app.cohorts.ingestion_job:run_ingestion")``. The handler is named, not imported:
the API process never imports a handler (nor, through the training handler, torch); only the job
process that runs it does. A process that runs jobs loads the domains first (``app.main``, which
``fairaudit worker`` imports too), and its supervisor claims only the kinds registered in it.

``on_failure`` names the rows that wait on a job of that kind: ``hook(session, job_id, reason)`` marks
them failed with the job's reason, run by ``app.jobs.state`` in the transaction that ends the job,
whichever process ends it (the job's own, the supervisor after a crash, the API cancelling a queued
job). So no such row stays "running" after its job.

``register_duty`` names work a supervisor does on every tick, in a transaction of its own, before it
claims jobs: e.g. a study queues its completion job once all its children have ended. A domain that
waits on several jobs registers one, so every process that runs jobs (the API's supervisor, ``fairaudit
worker``, a restarted server) moves it on, and the job machinery still names no domain.

A job process starts fresh (a spawned child, or a Ray worker), so the supervisor hands it a
``JobProgram``: the handler's and failure hook's names and the modules defining every table the
launching process has loaded. SQLAlchemy resolves a foreign key when it flushes and fails if the table
it names was never loaded, and foreign keys cross domains (a model version names its job, its cohort,
its organisation).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from app.jobs.context import Completion, JobContext
    from app.settings import Settings

FailureHook = Callable[["Session", str, str], None]
Duty = Callable[["Session", "Settings"], None]

_handlers: dict[str, str] = {}
_failure_hooks: dict[str, str] = {}
_duties: dict[str, str] = {}


def register(kind: str, handler: str, *, on_failure: str | None = None) -> None:
    """Name the function (``"module:function"``) that runs jobs of ``kind``, and optionally the one that
    fails the rows waiting on such a job; a kind has one of each."""
    _record(_handlers, kind, handler, "run")
    if on_failure is not None:
        _record(_failure_hooks, kind, on_failure, "settled on failure")


def _record(registry: dict[str, str], kind: str, name: str, role: str) -> None:
    module, colon, function = name.partition(":")
    if not (module and colon and function):
        raise ValueError(f"a job handler is named 'module:function', not {name!r}")
    registered = registry.setdefault(kind, name)
    if registered != name:
        raise ValueError(f"job kind {kind!r} is {role} by {registered}; it cannot also be {role} by {name}")


def register_duty(name: str, function: str) -> None:
    """Name the function (``"module:function"``, taking a session and the settings; never commits) a
    supervisor runs on every tick."""
    _record(_duties, name, function, "done")


def duties() -> dict[str, Duty]:
    """The supervisor's duties in this process, by name."""
    return {name: _load(function) for name, function in _duties.items()}


def kinds() -> frozenset[str]:
    """The kinds of job this process can run."""
    return frozenset(_handlers)


def failure_hook(kind: str) -> FailureHook | None:
    """What fails the rows waiting on a job of ``kind``, if anything does."""
    name = _failure_hooks.get(kind)
    if name is None:
        return None
    hook: FailureHook = _load(name)
    return hook


@dataclass(frozen=True)
class JobProgram:
    """What a fresh job process loads to run one job (plain strings: it is pickled to the process)."""

    kind: str
    handler: str
    table_modules: tuple[str, ...]
    on_failure: str | None = None

    def load_tables(self) -> None:
        for name in self.table_modules:
            importlib.import_module(name)

    def register_here(self) -> None:
        """Register this kind in the job process too, so that ending the job there settles its rows."""
        register(self.kind, self.handler, on_failure=self.on_failure)

    def load_handler(self) -> Callable[[JobContext], Completion]:
        handler: Callable[[JobContext], Completion] = _load(self.handler)
        return handler


def program(kind: str) -> JobProgram:
    """The program for a job of ``kind``, which must be registered in this process."""
    from app.db.base import Base  # not at the top: a job process unpickles a JobProgram before its lifeline is armed

    tables = {mapper.class_.__module__ for mapper in Base.registry.mappers}
    return JobProgram(kind, _handlers[kind], tuple(sorted(tables)), _failure_hooks.get(kind))


def _load(name: str) -> Any:
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)
