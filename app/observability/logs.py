"""Structured logs: one JSON object per line (or a console rendering for people), via ``structlog``.

``configure_logging`` runs once per process (``fairaudit`` commands, each job process). Every log record,
whether written through ``structlog`` or through the standard library (the app's modules, uvicorn,
SQLAlchemy, Alembic), is rendered by one ``structlog`` formatter on the root logger's one handler, with
the context variables bound at the time merged in: ``request_id`` in a request
(``app.observability.middleware``), ``job_id`` in a job process (``app.jobs.runner``). A standard-library
record's ``extra`` fields become keys of its object.
"""

from __future__ import annotations

import logging
from typing import Literal, TextIO

import structlog
from structlog.typing import EventDict

LogFormat = Literal["json", "console"]

_SHARED: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


_STRUCTLOG_META = frozenset({"_record", "_from_structlog"})  # removed by remove_processors_meta, later


def _drop_noise(_logger: object, _name: str, event: EventDict) -> EventDict:
    """Drop what other libraries attach to every record: uvicorn's ANSI-coloured copy of its message,
    private attributes of a record factory (Ray's ``_ray_timestamp_ns``). Not for a log file."""
    for key in [k for k in event if k == "color_message" or (k[:1] == "_" and k not in _STRUCTLOG_META)]:
        del event[key]
    return event


def configure_logging(log_format: LogFormat = "json", level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Route every logger through ``structlog``'s renderer on ``stream`` (stderr). Calling it again replaces
    the set-up."""
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    rendering: list[structlog.types.Processor] = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]  # a traceback as one string
        if log_format == "json"
        else [structlog.dev.ConsoleRenderer(colors=False)]  # renders tracebacks itself
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_SHARED, structlog.stdlib.ExtraAdder(), _drop_noise],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # their own handlers would print plain text
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
