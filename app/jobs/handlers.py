"""Which function runs each kind of job: a registry the domains fill, so the job machinery names none.

A domain registers every kind of job it owns where it queues it, e.g.
``register("ingest", "app.cohorts.ingestion_job:run_ingestion")``. The handler is named, not imported:
the API process never imports a handler (nor, through the training handler, torch); only the job
process that runs it does. A process that runs jobs loads the domains first (``app.main``, which
``fairaudit worker`` imports too), and its supervisor claims only the kinds registered in it.

A job process starts fresh (a spawned child, or a Ray worker), so the supervisor hands it a
``JobProgram``: the handler's name and the modules defining every table the launching process has
loaded. SQLAlchemy resolves a foreign key when it flushes and fails if the table it names was never
loaded, and foreign keys cross domains (a model version names its job, its cohort, its organisation).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.jobs.context import Completion, JobContext

_handlers: dict[str, str] = {}


def register(kind: str, handler: str) -> None:
    """Name the function (``"module:function"``) that runs jobs of ``kind``; a kind has one handler."""
    module, colon, function = handler.partition(":")
    if not (module and colon and function):
        raise ValueError(f"a job handler is named 'module:function', not {handler!r}")
    registered = _handlers.setdefault(kind, handler)
    if registered != handler:
        raise ValueError(f"job kind {kind!r} is run by {registered}; it cannot also be run by {handler}")


def kinds() -> frozenset[str]:
    """The kinds of job this process can run."""
    return frozenset(_handlers)


@dataclass(frozen=True)
class JobProgram:
    """What a fresh job process loads to run one job (plain strings: it is pickled to the process)."""

    handler: str
    table_modules: tuple[str, ...]

    def load_tables(self) -> None:
        for name in self.table_modules:
            importlib.import_module(name)

    def load_handler(self) -> Callable[[JobContext], Completion]:
        module, _, function = self.handler.partition(":")
        handler: Callable[[JobContext], Completion] = getattr(importlib.import_module(module), function)
        return handler


def program(kind: str) -> JobProgram:
    """The program for a job of ``kind``, which must be registered in this process."""
    from app.db.base import Base  # not at the top: a job process unpickles a JobProgram before its lifeline is armed

    tables = {mapper.class_.__module__ for mapper in Base.registry.mappers}
    return JobProgram(_handlers[kind], tuple(sorted(tables)))
