"""The ``fairaudit`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from app.settings import get_settings


def _migrate() -> None:
    from app.core.private_files import make_private
    from app.db.engine import make_engine
    from app.db.migrate import upgrade_to_head

    make_private(get_settings().data_dir)  # before the SQLite database may be created
    engine = make_engine(get_settings().database_url)
    upgrade_to_head(engine)
    engine.dispose()


def cmd_migrate(_: argparse.Namespace) -> int:
    _migrate()
    print("database at the latest migration")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from app.core.native_memory import prepare_server_process

    prepare_server_process()  # first: before any import or start-up starts a thread (app/core/native_memory.py)
    from app.main import create_app
    from app.server import serve

    settings = get_settings()
    _migrate()
    host, port = args.host or settings.host, args.port or settings.port
    processes = f", {settings.workers} worker processes" if settings.workers > 1 else ""
    print(f"FairAudit on http://{host}:{port} (database {settings.database_url.split('@')[-1]}{processes})", flush=True)
    if settings.workers == 1:
        serve(create_app(settings), settings, host=host, port=port)
        return 0
    from app.main import parent_services

    with parent_services(settings):  # the supervisor and the sweep here, once; the API in the workers
        serve("app.main:worker_app", settings, host=host, port=port)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import signal
    import threading

    import app.main  # noqa: F401  (the whole service, so every domain has registered its kinds of job)
    from app.db.engine import make_engine, make_session_factory
    from app.jobs.supervisor import Supervisor

    if args.concurrency is not None and args.concurrency < 1:
        print("error: --concurrency must be at least 1", file=sys.stderr)
        return 2
    settings = get_settings()
    _migrate()
    if settings.ray_address:
        print(
            "note: FAIRAUDIT_RAY_ADDRESS is set, so the API already dispatches jobs to Ray; "
            "this worker runs the jobs it claims here, in local processes",
            file=sys.stderr,
        )
    engine = make_engine(settings.database_url)
    supervisor = Supervisor(settings, make_session_factory(engine), capacity=args.concurrency)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    supervisor.start()
    print(
        f"FairAudit worker {supervisor.worker_id}: up to {supervisor.capacity} job(s) at once "
        f"(database {settings.database_url.split('@')[-1]}); stop with Ctrl-C or SIGTERM",
        flush=True,
    )
    try:
        stop.wait()
    finally:
        supervisor.stop()  # running jobs are killed and queued again; they resume from checkpoints
        engine.dispose()
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    from app.auth.service import create_key, ensure_organisation
    from app.core.errors import InputError
    from app.db.engine import make_engine, make_session_factory, transaction

    _migrate()
    engine = make_engine(get_settings().database_url)
    try:
        with transaction(make_session_factory(engine)) as session:
            org = ensure_organisation(session, args.org)
            _, plaintext = create_key(session, org.id, args.role, args.name)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(plaintext)
    print(
        f"(organisation {args.org!r}, role {args.role}; store this key now: it is not shown again)",
        file=sys.stderr,
    )
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    import json

    from app.cohorts.synth import cxr, cxr_findings, derm

    misplaced = {
        "--task multiclass": args.kind != "derm" and args.task != "binary",
        "--partition": args.partition is not None and args.task != "multiclass",
        "--findings": args.kind != "cxr" and args.findings is not None,
    }
    for option, wrong in misplaced.items():
        if wrong:
            print(f"error: {option} does not apply to `synth {args.kind} --task {args.task}`", file=sys.stderr)
            return 2
    out = Path(args.out or f"{args.kind}-{args.n}.zip")
    config: dict[str, Any] | None = None
    if args.kind == "derm":
        derm.write_derm_archive(out, n=args.n, seed=args.seed, image_size=args.image_size, task=args.task)
        if args.task == "multiclass":
            config = derm.cohort_config(args.partition or 9)
    elif args.findings is not None:
        cxr_findings.write_findings_archive(
            out, n=args.n, seed=args.seed, findings=args.findings, image_size=args.image_size
        )
        config = cxr_findings.cohort_config(args.findings)
    else:
        cxr.write_cxr_archive(out, n=args.n, seed=args.seed, image_size=args.image_size)
    print(out)
    if config is not None:
        print(f"cohort config: {json.dumps(config)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from app.demo import run_demo

    settings = get_settings()
    url = args.url or f"http://{settings.host}:{settings.port}"
    return run_demo(url, n=args.n, image_size=args.image_size, settings=settings, folds=args.folds, epochs=args.epochs)


def cmd_study(args: argparse.Namespace) -> int:
    import json
    import os

    from app.demo import run_study

    settings = get_settings()
    key = args.key or os.environ.get("FAIRAUDIT_API_KEY")
    if not key:
        print("an API key is needed: --key or FAIRAUDIT_API_KEY (an auditor's or an admin's)", file=sys.stderr)
        return 2
    body = json.loads(Path(args.file).read_text(encoding="utf-8"))
    return run_study(args.url or f"http://{settings.host}:{settings.port}", key, body)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fairaudit", description="FairAudit: clinical fairness audits.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="migrate the database, then serve the API with the embedded defaults")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=cmd_serve)

    sub.add_parser("migrate", help="upgrade the database to the latest migration").set_defaults(func=cmd_migrate)

    worker = sub.add_parser(
        "worker",
        help="run queued jobs on this machine without the API (one local process per job)",
        description=(
            "Claim and run queued jobs on this machine, with no API: for a machine that should execute jobs "
            "beside API replicas started with FAIRAUDIT_SUPERVISOR_ENABLED=false, or in addition to them "
            "(claims are atomic). Not needed with FAIRAUDIT_RAY_ADDRESS: the API then dispatches jobs to "
            "the Ray cluster itself. Needs the API's database and its data and model folders."
        ),
    )
    worker.add_argument("--concurrency", type=int, help="jobs run at once (default: FAIRAUDIT_MAX_CONCURRENT_JOBS)")
    worker.set_defaults(func=cmd_worker)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create an API key (and the organisation if new); prints the key")
    create.add_argument("--org", required=True)
    create.add_argument("--role", required=True, choices=["admin", "auditor", "predictor"])
    create.add_argument("--name", default="")
    create.set_defaults(func=cmd_keys_create)

    synth = sub.add_parser("synth", help="write a synthetic cohort archive with a planted, documented bias")
    synth.add_argument("kind", choices=["derm", "cxr"])
    synth.add_argument("--n", type=int, default=2000)
    synth.add_argument("--out")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--image-size", type=int, default=128)
    synth.add_argument(
        "--task",
        choices=["binary", "multiclass"],
        default="binary",
        help="derm: what the images show: the three-partition lesion (binary) or the nine-partition condition",
    )
    synth.add_argument(
        "--partition",
        type=int,
        choices=[3, 9],
        help="derm --task multiclass: the classes of the printed cohort config (default 9; the archive is the same)",
    )
    synth.add_argument(
        "--findings",
        type=int,
        choices=range(1, 9),
        metavar="N",
        help="cxr: the harder multi-finding cohort with N findings (1-8) instead of the single binary finding",
    )
    synth.set_defaults(func=cmd_synth)

    study = sub.add_parser(
        "study",
        help="submit a study (a JSON body of POST /v1/studies) to a running server and follow it to the end",
    )
    study.add_argument("file", help="the study as JSON: cohort_id, configs, folds, seeds, …")
    study.add_argument("--url", help="the server (default: FAIRAUDIT_HOST:FAIRAUDIT_PORT)")
    study.add_argument("--key", help="API key (default: FAIRAUDIT_API_KEY)")
    study.set_defaults(func=cmd_study)

    demo = sub.add_parser("demo", help="run the whole loop against a running server (started by `fairaudit serve`)")
    demo.add_argument("--url", help="the server (default: FAIRAUDIT_HOST:FAIRAUDIT_PORT)")
    demo.add_argument("--n", type=int, default=2500, help="synthetic images")
    demo.add_argument("--image-size", type=int, default=64)
    demo.add_argument("--folds", type=int, default=3, help="folds of the study (2 is quickest)")
    demo.add_argument("--epochs", type=int, help="training epochs of each job (default: the demo's)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    from app.observability.logs import configure_logging

    configure_logging(get_settings().log_format)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the demo's output
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
