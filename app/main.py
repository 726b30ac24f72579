"""The FastAPI application factory."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.alerts.router import router as alerts_router
from app.alerts.worker import AlertWorker
from app.audit.middleware import AuditMiddleware
from app.auth.key_cache import KeyCache
from app.auth.router import router as keys_router
from app.auth.usage import KeyUsage
from app.cohorts.router import router as cohorts_router
from app.console.router import router as console_router
from app.console.router import static_files as console_static_files
from app.core.body_limit import BodySizeLimitMiddleware
from app.core.openapi import add_problem_schemas
from app.core.private_files import make_private
from app.core.problems import install_problem_handlers
from app.core.refusals import RefusalLimiter
from app.core.url_guard import UrlGuardMiddleware
from app.db.engine import make_engine, make_read_session_factory, make_session_factory, read_only
from app.db.group_commit import GroupCommitWriter
from app.fairness.router import router as fairness_router
from app.gates.router import router as gates_router
from app.housekeeping.orphans import OrphanSweeper
from app.jobs.metrics import JobMetrics
from app.jobs.router import router as jobs_router
from app.jobs.supervisor import Supervisor
from app.observability.metrics import Telemetry
from app.observability.middleware import RequestObservationMiddleware
from app.ops.router import router as ops_router
from app.serving.activity import Activity
from app.serving.aggregates import count_predictions
from app.serving.directory import ServedModels
from app.serving.models import Prediction
from app.serving.router import router as serving_router
from app.settings import Settings, get_settings
from app.studies.router import router as studies_router
from app.training_jobs.router import router as training_jobs_router

log = logging.getLogger(__name__)


@contextmanager
def background_services(
    settings: Settings,
    engine: Engine,
    session_factory: sessionmaker[Session],
    *,
    run_supervisor: bool,
    run_sweeper: bool,
) -> Iterator[Supervisor | None]:
    """The job supervisor and the orphan sweep, which must run in exactly one process of a server:
    the app's own (one worker) or the parent of ``fairaudit serve``'s worker processes. The supervisor
    runs each job in a local child process, or, with ``ray_address`` set, as a Ray task on that
    cluster (up to ``ray_max_concurrent_jobs`` per replica; replicas share the queue, claims are atomic)."""
    supervisor, ray_executor = None, None
    if run_supervisor and settings.ray_address:
        from app.jobs.ray_executor import RayExecutor

        ray_executor = RayExecutor(settings)
        ray_executor.connect()  # a wrong address or a missing Ray fails the start, not each job
        supervisor = Supervisor(
            settings, session_factory, executor=ray_executor, capacity=settings.ray_max_concurrent_jobs
        )
    elif run_supervisor:
        supervisor = Supervisor(settings, session_factory)
    if supervisor is not None:
        supervisor.start()
    sweeper = None
    if run_sweeper and settings.orphan_sweep_enabled:
        sweeper = OrphanSweeper(settings, make_read_session_factory(engine))
        sweeper.start()
    try:
        yield supervisor
    finally:
        if sweeper is not None:
            sweeper.stop()
        if supervisor is not None:
            supervisor.stop()
        if ray_executor is not None:
            ray_executor.close()


def create_app(
    settings: Settings | None = None, *, run_supervisor: bool | None = None, run_sweeper: bool = True
) -> FastAPI:
    """Build the app. The job supervisor runs in-process unless it is switched off (tests drive jobs
    explicitly; ``fairaudit worker`` may run it elsewhere; with ``FAIRAUDIT_WORKERS`` > 1 the parent
    of the worker processes runs it and the orphan sweep, see ``worker_app``)."""
    settings = settings or get_settings()
    problems = settings.check_production()
    if problems:
        raise RuntimeError("refusing to start with unsafe production settings: " + "; ".join(problems))
    make_private(settings.data_dir)  # every file this process creates from here on is owner-only
    engine = make_engine(settings.database_url, settings.db_pool_size)
    session_factory = make_session_factory(engine)
    row_writer = GroupCommitWriter(engine)
    row_writer.after_insert(Prediction, count_predictions)  # monitoring aggregates, in the rows' transaction
    if run_supervisor is None:
        run_supervisor = settings.supervisor_enabled

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            with background_services(
                settings, engine, session_factory, run_supervisor=run_supervisor, run_sweeper=run_sweeper
            ) as supervisor:
                app.state.supervisor = supervisor
                alert_worker = AlertWorker(settings, session_factory, app.state.activity)  # each worker: rules lock
                alert_worker.start()
                try:
                    yield
                finally:
                    alert_worker.stop()
        finally:
            row_writer.close()
            engine.dispose()

    # /docs and /redoc with their scripts served from this package: a hospital network has no internet
    app = FastAPIOffline(
        title="FairAudit",
        version="0.1.0",
        summary="Clinical fairness audits: subgroup metrics with honest uncertainty, early-exit serving.",
        lifespan=lifespan,
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory
    app.state.read_engine = read_only(engine)  # API key checks
    app.state.read_session_factory = make_read_session_factory(engine)  # GET routes, event streams
    app.state.served_models = ServedModels(settings, app.state.read_session_factory)
    app.state.activity = Activity()  # predictions and outcomes wake the alert rules (app.alerts.worker)
    app.state.refusal_limiter = RefusalLimiter(
        settings.anonymous_refusals_per_window, settings.anonymous_refusal_window_seconds
    )
    app.state.row_writer = row_writer  # prediction and audit-log rows (group commit)
    app.state.key_usage = KeyUsage(row_writer)  # API keys' last use, to the minute
    app.state.key_cache = KeyCache(settings.key_cache_seconds)  # valid keys' checks, reused ≤ 1 s
    app.state.telemetry = Telemetry([JobMetrics(app.state.read_engine)])  # /metrics (app/observability/metrics.py)
    install_problem_handlers(app)
    app.add_middleware(UrlGuardMiddleware)  # ids and filters with NUL never reach the database
    app.add_middleware(
        BodySizeLimitMiddleware,
        default_limit=settings.max_request_bytes,
        upload_limit=settings.max_upload_bytes,
        upload_paths=("/v1/cohorts",),
    )
    app.add_middleware(AuditMiddleware)  # rejected uploads are audited too
    # outermost: every request, however it ends, gets its id (logs, problems, X-Request-ID) and its latency
    app.add_middleware(RequestObservationMiddleware, telemetry=app.state.telemetry)
    # Serving first: routes are matched in order, and prediction is the hot path (no two routes share path and method).
    for router in (
        serving_router,
        ops_router,
        keys_router,
        cohorts_router,
        jobs_router,
        training_jobs_router,
        fairness_router,
        alerts_router,
        gates_router,
        studies_router,
        console_router,
    ):
        app.include_router(router)
    app.mount("/console/static", console_static_files, name="console-static")
    add_problem_schemas(app)
    return app


def worker_app() -> FastAPI:
    """One of ``fairaudit serve``'s worker processes (``FAIRAUDIT_WORKERS`` > 1; uvicorn spawns each and
    imports this factory): the API with its own database pool, group-commit writer, alert loops and
    ONNX Runtime sessions, but no job supervisor and no orphan sweep (the parent runs those, once).
    It dies with the parent, as job processes do, so a killed server leaves no worker serving. Its
    malloc arenas are capped and trimmed as ``fairaudit serve``'s are: the cap is per process, and the request
    threads whose arenas it bounds run here."""
    from app.core.native_memory import prepare_server_process
    from app.jobs.lifeline import die_with_parent

    prepare_server_process()  # first, before this process starts its threads
    from app.observability.logs import configure_logging

    die_with_parent(os.getppid())
    settings = get_settings()
    configure_logging(settings.log_format)
    # uvicorn switched its access log off in the parent only; the middleware writes a structured line
    logging.getLogger("uvicorn.access").propagate = False
    return create_app(settings, run_supervisor=False, run_sweeper=False)


@contextmanager
def parent_services(settings: Settings) -> Iterator[None]:
    """What the parent of ``fairaudit serve``'s worker processes runs while they serve: the job
    supervisor (unless switched off) and the orphan sweep, once for the whole server."""
    make_private(settings.data_dir)
    engine = make_engine(settings.database_url)
    try:
        with background_services(
            settings,
            engine,
            make_session_factory(engine),
            run_supervisor=settings.supervisor_enabled,
            run_sweeper=True,
        ):
            yield
    finally:
        engine.dispose()
