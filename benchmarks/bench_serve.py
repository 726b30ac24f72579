"""Serving benchmark: early exit vs full depth, the HTTP service vs raw ONNX Runtime, ONNX Runtime vs PyTorch.

One model per run, exported once with the real exporter (parity check included) and measured three ways
on the same files and the same synthetic images:

1. Early exit vs full depth (images/s at ``--batch``): the served early-exit chain against the full graph
   (every exit computed) and against the same chain with early exit switched off. The network has random
   weights (BatchNorm statistics randomised too) and its exit thresholds are set on a synthetic
   validation split at quantiles of its own exit confidences (``--exit-shares``: the share meant to leave
   at each internal exit); the exit fractions printed are those measured on the separate test split.
   The speed-up is bounded by the exit mix: ceiling = 1 / expected compute (the mean of the manifest's
   ``exit_costs`` at the exits taken), and the achieved speed-up is printed as a fraction of it.
   ``--sections 1 --runs 5`` runs this section alone five times (fresh sessions each run,
   ``--ee-rounds`` interleaved rounds each) and prints each run's fraction and the minimum.
2. Service overhead: single-image prediction requests over HTTP to a real ``fairaudit serve`` on 127.0.0.1
   (``--workers`` server processes; ``--clients`` concurrent keep-alive clients, ``--requests`` in all; the
   server checks the key, finds the model, decodes the PNG, runs the chain and stores a Prediction row and
   an audit row per request)
   against raw ONNX Runtime in this process on the same images (the early-exit chain on already-decoded,
   normalised single images, sequentially and from ``--clients`` threads; the better of the two is the
   reference). Also measured: the same decode + preprocessing + chain in process (what the service does
   minus HTTP, key, lookups and rows), and CPU time per image of each, the server's read from /proc, so
   the overhead is shown in milliseconds of CPU and not only as a ratio. The clients run on the same
   cores as the server, so the service is charged for them too.
3. ONNX Runtime vs PyTorch eager (CPU, same threads) for the same network's full forward pass.
4. Read path: GET requests over HTTP to the same server (``--clients`` keep-alive clients, an auditor
   key) for a job listing (50 of ``--jobs`` job rows), one job and one model, against the raw read
   in this process: the same rows selected with SQLAlchemy on a read-only connection of the same
   database, from ``--clients`` threads, with no HTTP, key check, serialisation or audit.

Targets: early exit ≥ 1.5× full depth when at least half the images leave at exit 1 or 2; the service
≥ 0.7× raw ONNX Runtime throughput. The read path has no target: it is measured to show what the request
machinery costs (key check, read-only session, serialisation, middleware) against the query itself.

    .venv/bin/python benchmarks/bench_serve.py                                  # resnet18, 128 px
    .venv/bin/python benchmarks/bench_serve.py --backbone small --image-size 64 --requests 80  # quick
    .venv/bin/python benchmarks/bench_serve.py --sections 1 --runs 5      # section 1, five runs
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.service import create_key, ensure_organisation
from app.cohorts.image_limits import ImageLimits
from app.db.engine import make_engine, make_session_factory, read_only, transaction
from app.db.migrate import upgrade_to_head
from app.jobs.models import Job
from app.jobs.state import enqueue
from app.modelpkg.manifest import MANIFEST_FILE, InputSpec
from app.modelpkg.onnx_chain import OnnxChain, cpu_count, make_session
from app.modelpkg.preprocessing import Preprocessing
from app.serving.models import ModelVersion
from app.serving.preprocess import decode_images
from app.serving.runtime import LoadedModel, ModelFiles, load_model
from app.training.export import ExportedModel, describe_model, export_model
from app.training.networks import MultiExitNet, build_network

BOUNDARY = "benchserveboundary"


def synthetic_pngs(n: int, size: int, seed: int) -> list[bytes]:
    """Smooth random colour patterns, 25 % larger than the model input (decoding resizes them)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    side = size + size // 4
    out = []
    for _ in range(n):
        coarse = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((side, side), Image.Resampling.BILINEAR)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def random_network(backbone: str, size: int, seed: int) -> MultiExitNet:
    torch.manual_seed(seed)
    net = build_network(backbone, in_channels=3, image_size=size, multi_exit=True).eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return net


def set_thresholds(probs: np.ndarray, shares: list[float]) -> list[float | None]:
    """θ per internal exit so that about ``shares[e]`` of all samples leave at exit e (on ``probs``)."""
    confidence = np.maximum(probs, 1 - probs)
    alive = np.ones(len(probs), dtype=bool)
    thresholds: list[float | None] = []
    for e, share in enumerate(shares):
        k = round(share * len(probs))
        c = np.sort(confidence[alive, e])[::-1]
        if k <= 0 or len(c) == 0:
            thresholds.append(None)
            continue
        theta = float(c[min(k, len(c)) - 1])
        thresholds.append(theta)
        alive &= confidence[:, e] < theta
    return [*thresholds, None]


def export(net: MultiExitNet, backbone: str, folder: Path, val: np.ndarray, shares: list[float]) -> ExportedModel:
    """Export with thresholds set on ``val``; a seeded network, so model.json has no training record."""
    with torch.no_grad():
        probs = torch.sigmoid(net(torch.from_numpy(val))).numpy()
    thresholds = set_thresholds(probs, shares)
    description = describe_model(
        net,
        backbone=backbone,
        version=folder.name,
        method="fair_multi_exit",
        operating_threshold=0.5,
        exit_thresholds=thresholds,
    )
    return export_model(net, folder, parity_images=val[:8], description=description)


def verified_files(folder: Path, exported: ExportedModel) -> ModelFiles:
    expected = {name: entry.sha256 for name, entry in exported.manifest.files.items()}
    return ModelFiles("bench", folder, {**expected, MANIFEST_FILE: exported.manifest_sha256})


def rate(fn: Callable[[], Any], items: int, rounds: int) -> float:
    """Median items/s over ``rounds`` timed calls (after one warm-up call)."""
    return rates({"": fn}, items, rounds)[""]


def rates(fns: dict[str, Callable[[], Any]], items: int, rounds: int) -> dict[str, float]:
    """Median items/s of each function over ``rounds`` interleaved rounds (``round_times``)."""
    return {name: items / statistics.median(t.wall) for name, t in round_times(fns, rounds).items()}


@dataclass(frozen=True)
class Times:
    wall: list[float]  # seconds per call
    cpu: list[float]  # CPU seconds of this process per call, ONNX Runtime's threads included


def round_times(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, Times]:
    """Wall and CPU seconds per call of each function, the rounds interleaved (A B C A B C …) after one
    warm-up call each, so that a change in the machine's load over the run affects every variant alike."""
    times: dict[str, Times] = {name: Times([], []) for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            cpu, start = time.process_time(), time.perf_counter()
            fn()
            times[name].wall.append(time.perf_counter() - start)
            times[name].cpu.append(time.process_time() - cpu)
    return times


def map_all(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    return [fn(item) for item in items]


def batches(x: np.ndarray, size: int) -> list[np.ndarray]:
    return [np.ascontiguousarray(x[i : i + size]) for i in range(0, len(x), size)]


def early_exit_vs_full(model: LoadedModel, folder: Path, x: np.ndarray, batch: int, rounds: int, threads: int) -> float:
    """Section 1; returns the early-exit chain's speed-up over the full graph as a fraction of its ceiling.

    Ceiling: 1 / expected compute, the mean over the test images of ``exit_costs`` (multiply-adds of
    the segments and every head run, as a fraction of the full graph's) at the exit each one took.
    The three variants run the same batches with the same threads, round by round (full graph, chain
    without exits, chain with exits, then again). The headline ratios are medians of per-round ratios:
    each pairs calls made a fraction of a second apart, so a change in the machine's load moves both
    sides of a ratio alike, and the median ignores the rounds a burst of other work hit one side of.
    """
    chain = model.chain
    no_exit = OnnxChain(chain.sessions, chain.specs, [None] * chain.n_exits, chain.task)
    full = make_session((folder / "full.onnx").read_bytes(), threads)
    parts = batches(x, batch)
    exits = np.concatenate([chain.run(p).exit_index for p in parts])
    fractions = np.bincount(exits, minlength=chain.n_exits) / len(exits)
    times = round_times(
        {
            "full graph": lambda: [full.run(None, {"image": p}) for p in parts],
            "chain, no exit": lambda: [no_exit.run(p) for p in parts],
            "chain, early exit": lambda: [chain.run(p) for p in parts],
        },
        rounds,
    )
    graph_t, deep_t, ee_t = (np.asarray(t.wall) for t in times.values())
    graph_c, ee_c = np.asarray(times["full graph"].cpu), np.asarray(times["chain, early exit"].cpu)
    speedup = float(np.median(graph_t / ee_t))  # per-round early exit / full graph, in images/s
    compute = float(np.asarray(model.manifest.exit_costs)[exits].mean())
    ceiling = 1 / compute
    n = len(x)
    print(f"\n1. Early exit vs full depth ({n} test images, batch {batch}, {rounds} interleaved rounds)")
    print("   exit fractions (1-based exits): " + ", ".join(f"{e + 1}: {f:.0%}" for e, f in enumerate(fractions)))
    print(f"   left at exit 1 or 2: {fractions[:2].sum():.0%}; expected compute {compute:.3f}, ceiling {ceiling:.3f}x")
    print(f"   {'':18s} {'median img/s':>12s} {'best img/s':>10s} {'CPU ms/img':>10s}")
    for name, t in times.items():
        wall, cpu = np.asarray(t.wall), np.asarray(t.cpu)
        print(f"   {name:18s} {n / np.median(wall):12.1f} {n / wall.min():10.1f} {1000 * np.median(cpu) / n:10.2f}")
    print(f"   chain without exits / full graph: {float(np.median(graph_t / deep_t)):.3f}x (median of round ratios)")
    print(
        f"   early exit / full graph: {speedup:.3f}x = {speedup / ceiling:.3f} of the ceiling "
        f"(median of per-round ratios; best vs best {graph_t.min() / ee_t.min():.3f}x; "
        f"CPU time {float(np.median(graph_c / ee_c)):.3f}x)"
    )
    print(f"   early exit / chain without exits: {float(np.median(deep_t / ee_t)):.3f}x")
    return speedup / ceiling


def onnx_vs_torch(net: MultiExitNet, folder: Path, x: np.ndarray, batch: int, rounds: int, threads: int) -> None:
    torch.set_num_threads(threads)
    full = make_session((folder / "full.onnx").read_bytes(), threads)
    print(f"\n3. ONNX Runtime vs PyTorch eager (full forward, {threads} threads)")
    for size in (1, batch):
        parts = batches(x[: max(size, min(len(x), 8 * size))], size)
        n = sum(len(p) for p in parts)
        tensors = [torch.from_numpy(p) for p in parts]
        with torch.inference_mode():
            eager = rate(partial(map_all, net, tensors), n, rounds)
        ort_rate = rate(partial(map_all, lambda p: full.run(None, {"image": p}), parts), n, rounds)
        ratio = ort_rate / eager
        print(f"   batch {size:3d}: eager {eager:8.1f} img/s, ONNX Runtime {ort_rate:8.1f} img/s -> {ratio:.2f}x")


def multipart_body(png: bytes) -> bytes:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="images"; filename="x.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    return head + png + f"\r\n--{BOUNDARY}--\r\n".encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def register_model(session: Session, organisation_id: str, folder: Path, model: LoadedModel, model_dir: Path) -> str:
    """Copy an exported model folder into the model repository and register it as version ``mdl_bench``."""
    shutil.copytree(folder, model_dir / "mdl_bench")
    session.add(
        ModelVersion(
            id="mdl_bench",
            organisation_id=organisation_id,
            method="fair_multi_exit",
            backbone="bench",
            path="mdl_bench",
            sha256=model.sha256,
            files={name: entry.sha256 for name, entry in model.manifest.files.items()},
            thresholds={"operating": model.operating_threshold, "exits": model.manifest.exit_thresholds},
            config={},
        )
    )
    return "mdl_bench"


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    database_url: str
    organisation_id: str
    predictor_key: str
    auditor_key: str
    job_ids: list[str]


def start_server(
    work: Path, folder: Path, model: LoadedModel, database_url: str | None, n_jobs: int, workers: int
) -> Server:
    """Migrate the database (a fresh SQLite file by default), register the model, a predictor and an
    auditor key and ``n_jobs`` queued job rows, start ``fairaudit serve`` (as the README does, so
    ``FAIRAUDIT_WORKERS`` is exercised) with ``workers`` server processes."""
    port = free_port()
    env = {
        **os.environ,
        "FAIRAUDIT_DATABASE_URL": database_url or f"sqlite:///{work / 'fairaudit.db'}",
        "FAIRAUDIT_DATA_DIR": str(work / "data"),
        "FAIRAUDIT_MODEL_DIR": str(work / "models"),
        "FAIRAUDIT_SUPERVISOR_ENABLED": "false",
        "FAIRAUDIT_WORKERS": str(workers),
        "FAIRAUDIT_HOST": "127.0.0.1",
        "FAIRAUDIT_PORT": str(port),
    }
    engine = make_engine(env["FAIRAUDIT_DATABASE_URL"])
    upgrade_to_head(engine)
    with transaction(make_session_factory(engine)) as session:
        org = ensure_organisation(session, "bench")
        _, key = create_key(session, org.id, "predictor")
        _, auditor = create_key(session, org.id, "auditor")
        register_model(session, org.id, folder, model, work / "models")
        config = {"method": "erm", "backbone": "small", "epochs": 2, "batch_size": 32, "lr": 0.001}
        jobs = [
            enqueue(session, organisation_id=org.id, kind="train", config=config, max_attempts=1) for _ in range(n_jobs)
        ]
        session.flush()
        organisation_id, job_ids = org.id, [j.id for j in jobs]
    engine.dispose()
    command = [sys.executable, "-m", "app.cli", "serve"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return Server(server, port, env["FAIRAUDIT_DATABASE_URL"], organisation_id, key, auditor, job_ids)
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the server did not start")


def http_load(port: int, key: str, bodies: list[bytes], requests: int, clients: int) -> tuple[float, list[float]]:
    """Prediction requests/s and per-request latencies (s) of ``clients`` keep-alive clients sharing
    ``requests``."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    path = "/v1/models/mdl_bench/predict"
    return http_requests(port, lambda i: ("POST", path, bodies[i % len(bodies)]), headers, requests, clients)


def http_requests(
    port: int,
    request: Callable[[int], tuple[str, str, bytes | None]],
    headers: dict[str, str],
    requests: int,
    clients: int,
) -> tuple[float, list[float]]:
    """Requests/s and per-request latencies (s) of ``clients`` keep-alive clients sharing ``requests``;
    ``request(i)`` is the method, path and body of the i-th. Any answer but 200 fails the run."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            method, path, body = request(i)
            start = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                if response.status != 200:
                    errors.append(payload.decode()[:200])
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, e.g. {errors[0]}")
    return requests / wall, latencies


def concurrent_rate(fn: Callable[[int], Any], requests: int, clients: int) -> tuple[float, float]:
    """Items/s and CPU milliseconds per item of ``fn(0) … fn(requests - 1)`` shared by ``clients``
    threads (CPU of this whole process, ONNX Runtime's own threads included)."""
    counter, lock = iter(range(requests)), threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            fn(i)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    cpu, start = time.process_time(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return requests / wall, 1000 * cpu / requests


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live descendants (a server's worker processes),
    all their threads, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children.update(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return own + sum(_cpu_or_zero(c) for c in children)


def _cpu_or_zero(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:  # ended meanwhile
        return 0.0


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def service_overhead(
    model: LoadedModel,
    folder: Path,
    work: Path,
    pngs: list[bytes],
    x: np.ndarray,
    args: argparse.Namespace,
) -> Reads:
    """Section 2; returns section 4's measurements, made on the same server."""
    requests, clients = args.requests, args.clients
    singles = [np.ascontiguousarray(x[i : i + 1]) for i in range(len(x))]
    in_process = {
        "raw ONNX Runtime chain": lambda i: model.chain.run(singles[i % len(singles)]),
        "decode + preprocess + chain": lambda i: model.predict(
            [pngs[i % len(pngs)]], ["x"], ImageLimits(max_pixels=10**8)
        ),
    }
    measured = {}
    for name, fn in in_process.items():
        concurrent_rate(fn, min(requests, 32), clients)  # warm-up
        for threads in (1, clients):
            measured[name, threads] = concurrent_rate(fn, requests, threads)
    raw = max(measured["raw ONNX Runtime chain", t] for t in (1, clients))
    pipeline = max(measured["decode + preprocess + chain", t] for t in (1, clients))
    eight = batches(x[: 8 * max(1, len(x) // 8)], 8)
    batching = rates(
        {
            "batch 8": lambda: [model.chain.run(b) for b in eight],
            "batch 1": lambda: [model.chain.run(s) for s in singles[: 8 * len(eight)]],
        },
        8 * len(eight),
        3,
    )

    server = start_server(work, folder, model, args.database_url, args.jobs, args.workers)
    port, key, pid = server.port, server.predictor_key, server.process.pid
    try:
        bodies = [multipart_body(p) for p in pngs]
        http_load(port, key, bodies, min(requests, 2 * clients), clients)  # warm-up: loads the model
        server_cpu, client_cpu = cpu_seconds(pid), time.process_time()
        throughput, http_latencies = http_load(port, key, bodies, requests, clients)
        server_ms = 1000 * (cpu_seconds(pid) - server_cpu) / requests
        client_ms = 1000 * (time.process_time() - client_cpu) / requests
        reads = read_path(server, args.read_requests, clients) if "4" in args.sections.split(",") else {}
    finally:
        server.process.terminate()
        server.process.wait(timeout=30)
    backend = (args.database_url or "sqlite").split(":")[0]
    processes = f"{args.workers} server process" + "es" * (args.workers > 1)
    print(f"\n2. Service overhead ({requests} single-image requests, {clients} concurrent clients, ", end="")
    print(f"{backend}, {processes})")
    print(f"   {'':42s} {'img/s':>8s} {'CPU ms/img':>11s}")
    for (name, threads), (speed, cpu) in measured.items():
        print(f"   {name + f', {threads} thread' + 's' * (threads > 1):42s} {speed:8.1f} {cpu:11.2f}")
    print(
        f"   {'HTTP service (fairaudit serve, 127.0.0.1)':42s} {throughput:8.1f} {server_ms:11.2f} (server) "
        f"+ {client_ms:.2f} ",
        end="",
    )
    print(f"(clients)   p50 {pct(http_latencies, 50):.1f} ms  p99 {pct(http_latencies, 99):.1f} ms")
    print(
        f"   -> service / raw ONNX Runtime: {throughput / raw[0]:.2f}x; service / in-process decode + chain: ", end=""
    )
    print(f"{throughput / pipeline[0]:.2f}x")
    overhead = server_ms - measured["decode + preprocess + chain", clients][1]
    print(f"   server CPU per request beyond decode + chain: {overhead:.2f} ms (HTTP, key, model lookup, rows)")
    eight_rate, one_rate = batching["batch 8"], batching["batch 1"]
    print(f"   micro-batching bound: raw chain at batch 8 {eight_rate:.1f} img/s vs batch 1 {one_rate:.1f} img/s")
    return reads


Reads = dict[str, tuple[float, list[float], float, float, float]]


def read_path(server: Server, requests: int, clients: int) -> Reads:
    """Per GET route: requests/s, latencies and the server's CPU ms per request over HTTP, and the raw
    read's rate and CPU ms per read (same rows, this process, a read-only connection, ``clients``
    threads). CPU time is what the load of other processes on the machine disturbs least."""
    engine = read_only(make_engine(server.database_url))
    org, ids = server.organisation_id, server.job_ids
    listing = select(Job).where(Job.organisation_id == org).order_by(Job.created_at.desc(), Job.id.desc()).limit(51)
    model = select(ModelVersion).where(ModelVersion.id == "mdl_bench", ModelVersion.organisation_id == org)
    routes: dict[str, tuple[Callable[[int], str], Callable[[int], Any]]] = {
        "GET /v1/jobs (50 rows)": (lambda i: "/v1/jobs?limit=50", lambda i: listing),
        "GET /v1/jobs/{id}": (
            lambda i: f"/v1/jobs/{ids[i % len(ids)]}",
            lambda i: select(Job).where(Job.id == ids[i % len(ids)], Job.organisation_id == org),
        ),
        "GET /v1/models/{id}": (lambda i: "/v1/models/mdl_bench", lambda i: model),
    }
    headers = {"Authorization": f"Bearer {server.auditor_key}"}
    measured = {}
    try:
        for name, (path, query) in routes.items():
            get = partial(_get, path)
            http_requests(server.port, get, headers, 2 * clients, clients)  # warm-up
            server_cpu = cpu_seconds(server.process.pid)
            speed, latencies = http_requests(server.port, get, headers, requests, clients)
            server_ms = 1000 * (cpu_seconds(server.process.pid) - server_cpu) / requests
            read = partial(_read, engine, query)
            concurrent_rate(read, min(requests, 32), clients)  # warm-up
            raw_speed, raw_ms = max(concurrent_rate(read, requests, t) for t in (1, clients))
            measured[name] = (speed, latencies, server_ms, raw_speed, raw_ms)
    finally:
        engine.dispose()
    return measured


def _get(path: Callable[[int], str], i: int) -> tuple[str, str, bytes | None]:
    return "GET", path(i), None


def _read(engine: Any, query: Callable[[int], Any], i: int) -> None:
    with Session(engine) as session:
        session.scalars(query(i)).all()


def print_reads(reads: Reads, args: argparse.Namespace) -> None:
    backend = (args.database_url or "sqlite").split(":")[0]
    print(f"\n4. Read path ({args.read_requests} GET requests per route, {args.clients} concurrent clients, {backend})")
    widths = {"req/s": 7, "p50 ms": 7, "p99 ms": 7, "CPU ms": 7, "raw read/s": 11, "raw CPU ms": 11, "service/raw": 12}
    print(f"   {'':24s} " + " ".join(f"{h:>{w}s}" for h, w in widths.items()))
    for name, (speed, latencies, cpu_ms, raw_speed, raw_ms) in reads.items():
        print(
            f"   {name:24s} {speed:7.1f} {pct(latencies, 50):7.1f} {pct(latencies, 99):7.1f} {cpu_ms:7.2f} "
            f"{raw_speed:11.1f} {raw_ms:11.2f} {speed / raw_speed:11.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet18", choices=["resnet18", "small", "vgg11"])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--n-val", type=int, default=64, help="images the exit thresholds are set on")
    parser.add_argument("--n-test", type=int, default=128, help="images every throughput is measured on")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=240)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--exit-shares", default="0.4,0.2,0.1,0.1", help="share meant to leave at exits 1-4")
    parser.add_argument("--threads", type=int, default=cpu_count())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--database-url", help="an empty database for the server (default: a new SQLite file)")
    parser.add_argument("--jobs", type=int, default=200, help="job rows in the database for the read path")
    parser.add_argument("--read-requests", type=int, default=400, help="GET requests per route")
    parser.add_argument("--runs", type=int, default=1, help="times section 1 is run (fresh sessions each run)")
    parser.add_argument("--ee-rounds", type=int, default=15, help="interleaved rounds per run of section 1")
    parser.add_argument("--workers", type=int, default=1, help="server processes (FAIRAUDIT_WORKERS)")
    parser.add_argument("--sections", default="1,2,3,4", help="which of the numbered measurements to run")
    args = parser.parse_args()
    if args.runs < 1 or args.ee_rounds < 1:
        parser.error("--runs and --ee-rounds must be at least 1")
    shares = [float(s) for s in args.exit_shares.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench_serve_") as tmp:
        work = Path(tmp)
        net = random_network(args.backbone, args.image_size, args.seed)
        if len(shares) != net.n_exits - 1:
            parser.error(f"--exit-shares needs {net.n_exits - 1} values")
        pngs = synthetic_pngs(args.n_val + args.n_test, args.image_size, args.seed)
        start = time.perf_counter()
        folder = work / "export" / "mdl_bench"
        spec = InputSpec(channels=3, height=args.image_size, width=args.image_size)
        pixels = decode_images(pngs, [str(i) for i in range(len(pngs))], spec, ImageLimits(max_pixels=10**8))
        x_all = Preprocessing.for_image(3, args.image_size).normalise(pixels)
        x_val, x_test = x_all[: args.n_val], x_all[args.n_val :]
        exported = export(net, args.backbone, folder, x_val, shares)
        model = load_model(verified_files(folder, exported), args.threads, ["CPUExecutionProvider"])
        print(
            f"{args.backbone} at {args.image_size} px, {net.n_exits} exits, exported in "
            f"{time.perf_counter() - start:.0f} s; thresholds {model.chain.thresholds}; "
            f"ONNX Runtime {args.threads} intra-op threads, no spinning"
        )
        sections = {int(n) for n in args.sections.split(",")}
        if 1 in sections:
            fractions = []
            for _ in range(args.runs):
                model = load_model(verified_files(folder, exported), args.threads, ["CPUExecutionProvider"])
                fractions.append(early_exit_vs_full(model, folder, x_test, args.batch, args.ee_rounds, args.threads))
            if args.runs > 1:
                listed = ", ".join(f"{f:.3f}" for f in fractions)
                print(f"\n   early exit / full graph as a fraction of the ceiling, {args.runs} runs: {listed}")
                print(f"   minimum {min(fractions):.3f}, median {statistics.median(fractions):.3f}")
        if sections & {2, 4}:
            reads = service_overhead(model, folder, work, pngs[args.n_val :], x_test, args)
        if 3 in sections:
            onnx_vs_torch(net, folder, x_test, args.batch, args.rounds, args.threads)
        if 4 in sections:
            print_reads(reads, args)


if __name__ == "__main__":
    main()
