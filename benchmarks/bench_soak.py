"""Soak benchmark: does the service stay healthy under sustained mixed load?

Starts ``fairaudit serve`` the README's way (a real subprocess, started as the tests start theirs:
``tests/live_server.py``) on a fresh SQLite file, or on a throw-away database created on the PostgreSQL
server that ``--database-url`` names (dropped afterwards). Before the clock starts it uploads a synthetic
dermatology cohort and trains a small multi-exit model through the API (as ``fairaudit demo`` does).
Then, for ``--minutes``:

- ``--clients`` bounded clients (each one request at a time, keep-alive, no pause) send mixed traffic:
  ~80 % single-image predictions (with demographics) to the trained model, outcomes of earlier
  predictions, the model's evaluation report (HTML) and monitoring, and list GETs (jobs, models,
  cohorts, evaluations);
- one training job and one ingestion are kept running: each is resubmitted when it ends (an ingested
  cohort is then deleted);
- two event streams stay open, one following the training job in flight and one the ingestion (each
  reconnects to the next job after its job's ``end`` event).

It prints the requests and errors (every distinct error with its count), p50/p99 per route, the API
process's RSS and open file descriptors at every tenth of the run (each minute at the default) and
the RSS growth after warm-up (100 % against 10 %), the descriptors before the load and after it has
drained, the SQLite WAL size, and whether every prediction row and audit row is in
the database (read after the server has stopped: one prediction row per successful prediction, one
audit row per state-changing response). It exits non-zero when there was an error, the RSS grew ≥ 5 %
after warm-up, or a row is missing.

    .venv/bin/python benchmarks/bench_soak.py                                # 10 minutes, 16 clients, SQLite
    .venv/bin/python benchmarks/bench_soak.py --minutes 1 --clients 4        # a smoke run
    .venv/bin/python benchmarks/bench_soak.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python benchmarks/bench_soak.py --minutes 3 --clients 8 --only predict --no-jobs   # bisect the mix

``--only`` keeps some routes of ``MIX`` (their shares renormalised), ``--no-jobs`` drops the training job,
the ingestion and their event streams: a growth that one part of the traffic alone shows is that part's.

With a PostgreSQL URL the database it names is only used to create and drop the throw-away one.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import http.client
import io
import json
import random
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' way to start a server

from live_server import LiveServer, live_server
from support import throwaway_pg_database

from app.auth.service import create_key, ensure_organisation
from app.cohorts.synth.derm import write_derm_archive
from app.db.engine import make_engine, make_session_factory, transaction
from app.settings import Settings

BOUNDARY = "soakboundary"
TRAINING = {
    "method": "fair_multi_exit",
    "backbone": "small",
    "batch_size": 64,
    "lr": 0.002,
    "patience": None,
    "sensitive_attributes": ["skin_tone"],
}
# route -> share of the bounded clients' requests
MIX = {
    "predict": 0.80,
    "outcome": 0.05,
    "report": 0.03,
    "monitoring": 0.02,
    "list jobs": 0.04,
    "list models": 0.02,
    "list cohorts": 0.02,
    "list evaluations": 0.02,
}
CHECKPOINTS = tuple(i / 10 for i in range(1, 11))  # RSS and fds every tenth of the run
MAX_RSS_GROWTH = 0.05
IDLE_RECONNECT_SECONDS = 4.0  # below the server's 5 s keep-alive timeout: never send on a closing connection


# ---------------------------------------------------------------------------------------------- records


@dataclass
class Stats:
    """Every request the benchmark made: latency per route, errors by message, what must be in the database."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    prediction_ids: set[str] = field(default_factory=set)
    outcomes_ok: int = 0
    state_changing: int = 0  # responses to POST/PUT/DELETE, whatever their status: one audit row each

    def record(self, route: str, seconds: float, error: str | None = None, state_changing: bool = False) -> None:
        with self.lock:
            self.latencies.setdefault(route, []).append(seconds)
            if error:
                self.errors[f"{route}: {error}"] += 1
            self.state_changing += state_changing

    def fail(self, route: str, error: str) -> None:
        with self.lock:
            self.errors[f"{route}: {error}"] += 1

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())


class Api:
    """One keep-alive connection; every call is recorded in ``stats`` under its route name."""

    def __init__(self, port: int, key: str, stats: Stats) -> None:
        self.port, self.stats = port, stats
        self.headers = {"Authorization": f"Bearer {key}"}
        self.conn: http.client.HTTPConnection | None = None
        self.last_used = 0.0

    def call(
        self, route: str, method: str, path: str, body: bytes | None = None, content_type: str = "", ok: int = 200
    ) -> Any:
        """The decoded JSON answer (text for HTML), or ``None`` after an error (recorded)."""
        headers = {**self.headers, **({"Content-Type": content_type} if content_type else {})}
        state_changing = method in ("POST", "PUT", "PATCH", "DELETE")
        start = time.perf_counter()
        try:
            status, payload, kind = self._send(method, path, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            self.stats.record(route, time.perf_counter() - start, f"{type(exc).__name__}: {exc}")
            return None
        seconds = time.perf_counter() - start
        if status != ok:
            self.stats.record(route, seconds, f"{status} {payload[:200].decode(errors='replace')}", state_changing)
            return None
        self.stats.record(route, seconds, None, state_changing)
        return json.loads(payload) if kind.startswith("application/json") else payload.decode(errors="replace")

    def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes, str]:
        if self.conn is None or time.monotonic() - self.last_used > IDLE_RECONNECT_SECONDS:
            self.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        payload = response.read()
        self.last_used = time.monotonic()
        return response.status, payload, response.getheader("Content-Type", "")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    for name, (filename, data) in files.items():
        head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        parts.append(head.encode() + b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n")
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"


# ---------------------------------------------------------------------------------------------- set-up


@contextlib.contextmanager
def database(url: str | None, work: Path) -> Iterator[str]:
    """A fresh SQLite file, or a throw-away database on the PostgreSQL server ``url`` names."""
    if url is None or url.startswith("sqlite"):
        yield url or f"sqlite:///{work / 'fairaudit.db'}"
        return
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with throwaway_pg_database(admin) as (_, throwaway):
            yield throwaway
    finally:
        admin.dispose()


def make_keys(database_url: str) -> dict[str, str]:
    engine = make_engine(database_url)
    with transaction(make_session_factory(engine)) as session:
        org = ensure_organisation(session, "soak hospital")
        keys = {role: create_key(session, org.id, role, f"soak {role}")[1] for role in ("auditor", "predictor")}
    engine.dispose()
    return keys


@dataclass
class Image:
    data: bytes
    demographics: dict[str, str | None]
    outcome: int


def held_out_images(path: Path) -> list[Image]:
    """Images, demographics and true labels of a synthetic archive (fitzpatrick17k manifest)."""
    with zipfile.ZipFile(path) as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode())))
        names = {Path(n).stem: n for n in zf.namelist() if n != "manifest.csv"}
        images = []
        for row in rows:
            scale = row["fitzpatrick_scale"]
            tone = None if scale == "-1" else ("light" if int(scale) <= 3 else "dark")
            demographics = {"skin_type": None if scale == "-1" else scale, "skin_tone": tone}
            outcome = int(row["three_partition_label"] == "malignant")
            images.append(Image(zf.read(names[row["md5hash"]]), demographics, outcome))
    return images


def upload(api: Api, archive: bytes, name: str, image_size: int) -> dict[str, Any] | None:
    config = json.dumps({"name": name, "preset": "fitzpatrick17k", "image_size": image_size})
    body, content_type = multipart({"config": config}, {"archive": ("cohort.zip", archive)})
    result: dict[str, Any] | None = api.call("POST /v1/cohorts", "POST", "/v1/cohorts", body, content_type, ok=202)
    return result


def train(api: Api, cohort_id: str, epochs: int, seed: int) -> dict[str, Any] | None:
    body = json.dumps({**TRAINING, "cohort_id": cohort_id, "epochs": epochs, "seed": seed}).encode()
    result: dict[str, Any] | None = api.call("POST /v1/jobs", "POST", "/v1/jobs", body, "application/json", ok=202)
    return result


def wait_until(poll: Callable[[], dict[str, Any] | None], done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    while True:
        value = poll()
        if value is None:
            raise SystemExit("set-up failed: a poll answered an error")
        if done(value):
            return value
        time.sleep(1)


def prepare_model(api: Api, args: argparse.Namespace, work: Path) -> tuple[str, str, str]:
    """Upload a cohort and train a small model through the API: (cohort id, model id, evaluation id)."""
    archive = write_derm_archive(work / "cohort.zip", n=args.cohort_images, seed=11, image_size=args.image_size)
    created = upload(api, archive.read_bytes(), "soak cohort", args.image_size)
    if created is None:
        raise SystemExit(f"set-up failed: {dict(api.stats.errors)}")
    cohort_id = created["id"]
    cohort = wait_until(lambda: api.call("GET /v1/cohorts/{id}", "GET", f"/v1/cohorts/{cohort_id}"), ready)
    if cohort["status"] != "ready":
        raise SystemExit(f"set-up failed: the cohort is {cohort['status']}: {cohort.get('errors')}")
    queued = train(api, cohort_id, args.epochs, seed=7)
    if queued is None:
        raise SystemExit(f"set-up failed: {dict(api.stats.errors)}")
    job_id = queued["id"]
    job = wait_until(lambda: api.call("GET /v1/jobs/{id}", "GET", f"/v1/jobs/{job_id}"), ended)
    if job["status"] != "succeeded":
        raise SystemExit(f"set-up failed: the training job {job['status']}: {job['error']}")
    return cohort_id, job["result"]["model_version_id"], job["result"]["evaluation_id"]


def ready(cohort: dict[str, Any]) -> bool:
    return cohort["status"] != "ingesting"


def ended(job: dict[str, Any]) -> bool:
    return job["status"] not in ("queued", "running")


# ---------------------------------------------------------------------------------------------- load


@dataclass
class Context:
    server: LiveServer
    keys: dict[str, str]
    stats: Stats
    model_id: str
    evaluation_id: str
    images: list[Image]
    stop: threading.Event = field(default_factory=threading.Event)
    unanswered: deque[tuple[str, int]] = field(default_factory=deque)  # (prediction id, true label)


def predict(ctx: Context, api: Api, rng: random.Random) -> None:
    image = rng.choice(ctx.images)
    fields = {"demographics": json.dumps([image.demographics])}
    body, content_type = multipart(fields, {"images": ("image.jpg", image.data)})
    answer = api.call("POST predict", "POST", f"/v1/models/{ctx.model_id}/predict", body, content_type)
    if answer is not None:
        ids = [p["id"] for p in answer["predictions"]]
        with ctx.stats.lock:
            ctx.stats.prediction_ids.update(ids)
        ctx.unanswered.extend((i, image.outcome) for i in ids)


def outcome(ctx: Context, api: Api, rng: random.Random) -> None:
    try:
        prediction_id, label = ctx.unanswered.popleft()
    except IndexError:
        predict(ctx, api, rng)
        return
    body = json.dumps({"outcome": label}).encode()
    if api.call("POST outcome", "POST", f"/v1/predictions/{prediction_id}/outcome", body, "application/json"):
        with ctx.stats.lock:
            ctx.stats.outcomes_ok += 1


def getter(route: str, path: Callable[[Context], str]) -> Callable[[Context, Api, random.Random], None]:
    def get(ctx: Context, api: Api, rng: random.Random) -> None:
        api.call(route, "GET", path(ctx))

    return get


ACTIONS: dict[str, Callable[[Context, Api, random.Random], None]] = {
    "predict": predict,
    "outcome": outcome,
    "report": getter("GET report", lambda c: f"/v1/evaluations/{c.evaluation_id}/report"),
    "monitoring": getter("GET monitoring", lambda c: f"/v1/models/{c.model_id}/monitoring"),
    "list jobs": getter("GET /v1/jobs", lambda c: "/v1/jobs?limit=50"),
    "list models": getter("GET /v1/models", lambda c: "/v1/models"),
    "list cohorts": getter("GET /v1/cohorts", lambda c: "/v1/cohorts"),
    "list evaluations": getter("GET /v1/evaluations", lambda c: "/v1/evaluations"),
}


def client(ctx: Context, seed: int, mix: dict[str, float]) -> None:
    """One bounded client: a request at a time until the run ends (predictions and outcomes with the
    predictor key, the rest with the auditor's)."""
    rng = random.Random(seed)
    apis = {role: Api(ctx.server.port, key, ctx.stats) for role, key in ctx.keys.items()}
    names, weights = list(mix), list(mix.values())
    while not ctx.stop.is_set():
        name = rng.choices(names, weights)[0]
        ACTIONS[name](ctx, apis["predictor" if name in ("predict", "outcome") else "auditor"], rng)
    for api in apis.values():
        api.close()


class JobCycler:
    """Keeps one training job and one ingestion running: each is resubmitted when it ends, until
    ``stop``; then waits (up to ``drain`` seconds) for the last ones to end."""

    def __init__(self, ctx: Context, cohort_id: str, archive: bytes, args: argparse.Namespace) -> None:
        self.ctx, self.cohort_id, self.archive, self.args = ctx, cohort_id, archive, args
        self.api = Api(ctx.server.port, ctx.keys["auditor"], ctx.stats)
        self.current: dict[str, str | None] = {"train": None, "ingest": None}  # job ids, for the event streams
        self.cohort: str | None = None  # the ingesting cohort
        self.finished = Counter[str]()
        self.drained = threading.Event()
        self.drain_timed_out = False

    def run(self) -> None:
        deadline: float | None = None
        while True:
            if self.ctx.stop.is_set() and deadline is None:
                deadline = time.monotonic() + self.args.drain
            busy = self._tick(submit=deadline is None)
            if deadline is not None and (not busy or time.monotonic() > deadline):
                self.drain_timed_out = busy
                break
            time.sleep(1)
        self.api.close()
        self.drained.set()

    def _tick(self, submit: bool) -> bool:
        """Poll both jobs, resubmit an ended one when ``submit``; whether one is still running."""
        busy = self._train(submit)
        return self._ingest(submit) or busy

    def _train(self, submit: bool) -> bool:
        job_id = self.current["train"]
        if job_id is not None:
            job = self.api.call("GET /v1/jobs/{id}", "GET", f"/v1/jobs/{job_id}")
            if job is None or not ended(job):
                return True
            self._ended("training", job["status"], job["error"])
        if not submit:
            return False
        job = train(self.api, self.cohort_id, self.args.train_epochs, seed=sum(self.finished.values()))
        self.current["train"] = job["id"] if job else None
        return job is not None

    def _ingest(self, submit: bool) -> bool:
        if self.cohort is not None:
            cohort = self.api.call("GET /v1/cohorts/{id}", "GET", f"/v1/cohorts/{self.cohort}")
            if cohort is None or not ready(cohort):
                return True
            self._ended("ingestion", "succeeded" if cohort["status"] == "ready" else cohort["status"], None)
            self.api.call("DELETE /v1/cohorts/{id}", "DELETE", f"/v1/cohorts/{self.cohort}")
            self.cohort = None
        if not submit:
            return False
        name = f"soak ingestion {self.finished['ingestion'] + 1}"
        cohort = upload(self.api, self.archive, name, self.args.image_size)
        self.cohort = cohort["id"] if cohort else None
        self.current["ingest"] = cohort["ingest_job_id"] if cohort else None
        return cohort is not None

    def _ended(self, kind: str, status: str, error: str | None) -> None:
        self.finished[kind] += 1
        if status != "succeeded":
            self.ctx.stats.fail(f"{kind} job", f"{status}: {error}")


def follow_events(ctx: Context, cycler: JobCycler, kind: str, counts: Counter[str]) -> None:
    """An event stream held open for the run: the current ``kind`` job's, then the next one's."""
    followed: set[str] = set()
    headers = {"Authorization": f"Bearer {ctx.keys['auditor']}"}
    with httpx.Client(base_url=ctx.server.url, headers=headers, timeout=httpx.Timeout(60)) as http:
        while not cycler.drained.is_set():
            job_id = cycler.current[kind]
            if job_id is None or job_id in followed:
                time.sleep(0.2)
                continue
            followed.add(job_id)
            _stream(ctx, http, job_id, counts)


def _stream(ctx: Context, http: httpx.Client, job_id: str, counts: Counter[str]) -> None:
    route, start, last = "GET /v1/jobs/{id}/events", time.perf_counter(), ""
    try:
        with http.stream("GET", f"/v1/jobs/{job_id}/events") as response:
            ctx.stats.record(
                route, time.perf_counter() - start, None if response.status_code == 200 else f"{response.status_code}"
            )
            for line in response.iter_lines():
                if line.startswith("event:"):
                    last = line.partition(":")[2].strip()
                    counts[last] += 1
    except httpx.HTTPError as exc:
        ctx.stats.fail(route, f"{type(exc).__name__}: {exc}")
        return
    if last != "end":
        ctx.stats.fail(route, "the stream closed before its end event")


# ---------------------------------------------------------------------------------------------- probes


@dataclass
class Probe:
    rss: int
    fds: Counter[str]  # open descriptors by kind: a file's name, socket, pipe, anon_inode:…
    wal: int | None


def probe(pid: int, database_url: str) -> Probe:
    return Probe(psutil.Process(pid).memory_info().rss, open_fds(pid), wal_size(database_url))


def open_fds(pid: int) -> Counter[str]:
    kinds = Counter[str]()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed while listed
            target = fd.readlink().as_posix()
            kinds[target.split(":")[0] if ":" in target and not target.startswith("/") else Path(target).name] += 1
    return kinds


def wal_size(database_url: str) -> int | None:
    if not database_url.startswith("sqlite"):
        return None
    wal = Path(database_url.split("///", 1)[1] + "-wal")
    return wal.stat().st_size if wal.exists() else 0


def count_rows(database_url: str, model_id: str) -> dict[str, Any]:
    """Read after the server stopped: prediction ids of the model, audit rows of predictions and outcomes."""
    engine = make_engine(database_url)
    with engine.connect() as conn:
        ids = set(
            conn.execute(text("SELECT id FROM predictions WHERE model_version_id = :m"), {"m": model_id}).scalars()
        )
        audit: dict[str, int] = dict(
            conn.execute(text("SELECT action, count(*) FROM audit_log WHERE status_code = 200 GROUP BY action")).all()
        )
        total = conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one()
    engine.dispose()
    return {
        "prediction_ids": ids,
        "predict_audit": audit.get("POST /v1/models/{model_ref}/predict", 0),
        "outcome_audit": audit.get("POST /v1/predictions/{prediction_id}/outcome", 0),
        "audit_total": total,
    }


# ---------------------------------------------------------------------------------------------- run


@dataclass
class Run:
    probes: list[Probe]
    before: Probe
    after: Probe
    cycler: JobCycler
    events: dict[str, Counter[str]]
    seconds: float
    requests: int  # made during the load (set-up and drain left out)


def soak(ctx: Context, cohort_id: str, ingest_archive: bytes, args: argparse.Namespace, db: str) -> Run:
    """The load for ``--minutes``, probed at each checkpoint; then drain (jobs end, streams close)."""
    before = probe(ctx.server.pid, db)
    cycler = JobCycler(ctx, cohort_id, ingest_archive, args)
    events = {"train": Counter[str](), "ingest": Counter[str]()}
    mix = {name: MIX[name] for name in args.only} if args.only else MIX
    threads = [threading.Thread(target=client, args=(ctx, i, mix)) for i in range(args.clients)]
    if args.jobs:
        threads.append(threading.Thread(target=cycler.run))
        threads += [threading.Thread(target=follow_events, args=(ctx, cycler, k, c)) for k, c in events.items()]
    else:
        cycler.drained.set()
    start, first = time.monotonic(), ctx.stats.requests
    for thread in threads:
        thread.start()
    probes = []
    for fraction in CHECKPOINTS:
        time.sleep(max(0.0, start + fraction * args.minutes * 60 - time.monotonic()))
        probes.append(probe(ctx.server.pid, db))
    seconds, requests = time.monotonic() - start, ctx.stats.requests - first
    ctx.stop.set()
    for thread in threads:
        thread.join()
    time.sleep(2)  # the server closes the connections the clients closed
    return Run(probes, before, probe(ctx.server.pid, db), cycler, events, seconds, requests)


def report(ctx: Context, run: Run, rows: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """Print the results; returns the failed criteria."""
    stats, backend = ctx.stats, args.database_url.split(":")[0] if args.database_url else "sqlite"
    print(f"\nSoak: {run.seconds / 60:.1f} min, {args.clients} clients, {backend}")
    print(f"requests {stats.requests} (set-up and drain included), {run.requests / run.seconds:.1f}/s during the load")
    print(f"errors {sum(stats.errors.values())}")
    for message, n in stats.errors.most_common():
        print(f"   {n:6d} x {message}")
    print(f"\n{'route':28s} {'requests':>9s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for route, values in sorted(stats.latencies.items(), key=lambda kv: -len(kv[1])):
        ms = np.asarray(values) * 1000
        print(f"{route:28s} {len(values):9d} {np.percentile(ms, 50):8.1f} {np.percentile(ms, 99):8.1f}")
    done = run.cycler.finished
    print(f"\njobs during the run: {done['training']} training, {done['ingestion']} ingestion ended", end="")
    print(f"; still running {args.drain:g} s after the load" if run.cycler.drain_timed_out else "")
    print("event streams: " + "; ".join(f"{k}: {dict(c)}" for k, c in run.events.items()))
    return report_server(run, args) + report_rows(stats, rows) + (["errors"] if stats.errors else [])


def report_server(run: Run, args: argparse.Namespace) -> list[str]:
    print("\nAPI process (fairaudit serve)   RSS MiB   open fds   WAL MiB")
    mib = 1024**2
    labels = [("before the load", run.before)]
    labels += [(f"at {f:.0%} ({f * args.minutes:g} min)", p) for f, p in zip(CHECKPOINTS, run.probes, strict=True)]
    labels.append(("after the drain", run.after))
    for label, p in labels:
        wal = "-" if p.wal is None else f"{p.wal / mib:.1f}"
        print(f"   {label:28s} {p.rss / mib:8.1f} {p.fds.total():10d} {wal:>9s}")
    for label, p in (labels[0], labels[-1]):
        print(f"open fds {label}: " + ", ".join(f"{k} {n}" for k, n in sorted(p.fds.items())))
    growth = run.probes[-1].rss / run.probes[0].rss - 1
    print(f"RSS growth after warm-up (100 % vs 10 %): {growth:+.1%} (limit {MAX_RSS_GROWTH:.0%})")
    return ["RSS growth"] if growth >= MAX_RSS_GROWTH else []


def report_rows(stats: Stats, rows: dict[str, Any]) -> list[str]:
    ids = rows["prediction_ids"]
    missing, extra = len(stats.prediction_ids - ids), len(ids - stats.prediction_ids)
    successes = len(stats.prediction_ids)
    checks = [
        ("prediction rows", successes, len(ids) - extra, f"missing {missing}, unknown {extra}"),
        ("audit rows of predictions", successes, rows["predict_audit"], ""),
        ("audit rows of outcomes", stats.outcomes_ok, rows["outcome_audit"], ""),
        ("audit rows, all", stats.state_changing, rows["audit_total"], "(every state-changing response)"),
    ]
    print(f"\n{'rows in the database':28s} {'responses':>9s} {'rows':>9s}")
    for name, expected, found, note in checks:
        print(f"   {name:25s} {expected:9d} {found:9d}  {'ok' if expected == found else 'MISMATCH'} {note}")
    failed = missing or extra or any(expected != found for _, expected, found, _ in checks)
    return ["rows"] if failed else []


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--database-url", help="a PostgreSQL server to make a throw-away database on (default SQLite)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--cohort-images", type=int, default=600, help="images of the cohort the model learns")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the model the clients predict with")
    parser.add_argument("--train-epochs", type=int, default=3, help="epochs of each training job during the run")
    parser.add_argument("--ingest-images", type=int, default=1000, help="images of each ingestion during the run")
    parser.add_argument("--drain", type=float, default=300, help="seconds to wait for the last jobs after the run")
    parser.add_argument(
        "--only", nargs="+", choices=list(MIX), metavar="ROUTE", help=f"send only these of the mix: {', '.join(MIX)}"
    )
    parser.add_argument(
        "--jobs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="keep a training job and an ingestion running, followed by two event streams (--no-jobs: none)",
    )
    return parser.parse_args()


def main() -> None:
    args = arguments()
    with tempfile.TemporaryDirectory(prefix="bench_soak_") as tmp, database(args.database_url, Path(tmp)) as db:
        work = Path(tmp)
        settings = Settings(database_url=db, data_dir=work / "data", model_dir=work / "models")
        env = {"FAIRAUDIT_MAX_CONCURRENT_JOBS": "2", "FAIRAUDIT_HEARTBEAT_SECONDS": "2"}
        env["FAIRAUDIT_STALE_AFTER_SECONDS"] = "30"  # the defaults, not the tests' quick ones
        with live_server(settings, env, log=work / "server.log") as server:
            stats = Stats()
            keys = make_keys(db)
            started = time.perf_counter()
            setup = Api(server.port, keys["auditor"], stats)
            cohort_id, model_id, evaluation_id = prepare_model(setup, args, work)
            setup.close()
            print(f"model {model_id} trained through the API in {time.perf_counter() - started:.0f} s")
            images = held_out_images(write_derm_archive(work / "held-out.zip", 64, 12345, args.image_size))
            ingest = write_derm_archive(work / "ingest.zip", args.ingest_images, 99, args.image_size).read_bytes()
            ctx = Context(server, keys, stats, model_id, evaluation_id, images)
            run = soak(ctx, cohort_id, ingest, args, db)
            log_tail = (work / "server.log").read_text(errors="replace").splitlines()[-5:]
        failed = report(ctx, run, count_rows(db, model_id), args)
        if stats.errors:
            print("\nlast server log lines:\n" + "\n".join(log_tail))
    print(f"\n{'FAILED: ' + ', '.join(failed) if failed else 'all criteria met'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
