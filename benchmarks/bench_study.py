"""Scheduling overhead of a study: the same training jobs run as one study and one by one.

A tiny generic cohort (``--n`` 32 px images, two per patient, sex as the group) is ingested, then the
``--configs`` × ``--folds`` × ``--seeds`` training jobs of a study (small backbone, one epoch: the run is
mostly process start and scheduling) are run twice with the same supervisor: first each submitted with
``POST /v1/jobs`` (its ``fold_plan`` given, so the work is identical), then as ``POST /v1/studies``,
until the study has ended (its children, then the completion job that pools and compares). Printed:
both wall times, the overhead per job of the study, and the ratio. The issue's target: < 2 s per job.

    .venv/bin/python benchmarks/bench_study.py                       # 2 configs × 5 folds × 3 seeds = 30 jobs
    .venv/bin/python benchmarks/bench_study.py --folds 2 --seeds 2   # 8 jobs, a quick look
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.auth.service import create_key, ensure_organisation
from app.db.engine import make_engine, make_session_factory, transaction
from app.db.migrate import upgrade_to_head
from app.jobs.models import Job
from app.jobs.supervisor import Supervisor
from app.main import create_app
from app.settings import Settings
from app.training.config import FoldPlan

TRIVIAL = {
    "sensitive_attributes": ["sex"],
    "backbone": "small",
    "epochs": 1,
    "batch_size": 16,
    "patience": None,
    "num_workers": 0,
    "device": "cpu",
    "augment": {"hflip": False, "vflip": False, "rotate_degrees": 0, "brightness": 0, "contrast": 0},
}
METHODS = ("erm", "pairwise_eo", "fair_multi_exit", "fair_multi_exit_pairwise_eo")


def archive(n: int) -> bytes:
    rng = np.random.default_rng(0)
    rows, buffer = ["image,label,sex,patient_id"], io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for i in range(n):
            png = io.BytesIO()
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(png, format="PNG")
            zf.writestr(f"img/{i}.png", png.getvalue())
            rows.append(f"img/{i}.png,{i % 2},{'female' if (i // 2) % 3 else 'male'},p{i // 2}")
        zf.writestr("manifest.csv", "\n".join(rows) + "\n")
    return buffer.getvalue()


def run_until_idle(supervisor: Supervisor, factory: sessionmaker[Session], done: Any = lambda: True) -> None:
    while True:
        supervisor.tick()
        with factory() as session:
            active = session.scalar(select(func.count()).where(Job.status.in_(["queued", "running"])))
        if not active and done():
            return
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", type=int, default=2, choices=range(1, 5))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--n", type=int, default=120, help="images (two per patient)")
    parser.add_argument("--concurrency", type=int, default=1, help="job processes at once")
    args = parser.parse_args()
    configs = [{**TRIVIAL, "method": m} for m in METHODS[: args.configs]]
    jobs = args.configs * args.folds * args.seeds

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            environment="test",
            database_url=f"sqlite:///{tmp}/bench.db",
            data_dir=Path(tmp) / "data",
            model_dir=Path(tmp) / "models",
            max_concurrent_jobs=args.concurrency,
            max_study_jobs=max(jobs, 1),
            bootstrap_resamples=200,
        )
        engine = make_engine(settings.database_url)
        upgrade_to_head(engine)
        factory = make_session_factory(engine)
        with transaction(factory) as session:
            _, key = create_key(session, ensure_organisation(session, "bench").id, "auditor")
        headers = {"Authorization": f"Bearer {key}"}
        with TestClient(create_app(settings, run_supervisor=False)) as client:
            supervisor = Supervisor(settings, factory)
            config = {
                "name": "bench",
                "preset": "generic",
                "image_column": "image",
                "label_column": "label",
                "sensitive_attributes": ["sex"],
                "patient_id_column": "patient_id",
                "split": {"mode": "random", "seed": 0},
                "image_size": 32,
                "channels": 3,
            }
            cohort = client.post(
                "/v1/cohorts",
                headers=headers,
                files={"archive": ("c.zip", archive(args.n))},
                data={"config": json.dumps(config)},
            ).json()
            run_until_idle(supervisor, factory)

            started = time.perf_counter()
            for c in configs:
                for seed in range(args.seeds):
                    for fold in range(args.folds):
                        plan = FoldPlan(folds=args.folds, fold=fold, seed=seed, stratify_by=["sex"])
                        body = {**c, "cohort_id": cohort["id"], "seed": seed, "fold_plan": plan.model_dump()}
                        response = client.post("/v1/jobs", headers=headers, json=body)
                        assert response.status_code == 202, response.text
            run_until_idle(supervisor, factory)
            one_by_one = time.perf_counter() - started

            started = time.perf_counter()
            body = {"cohort_id": cohort["id"], "configs": configs, "folds": args.folds, "seeds": args.seeds}
            study = client.post("/v1/studies", headers=headers, json=body)
            assert study.status_code == 202, study.text
            study_url = f"/v1/studies/{study.json()['id']}"
            run_until_idle(
                supervisor, factory, lambda: client.get(study_url, headers=headers).json()["status"] != "running"
            )
            as_study = time.perf_counter() - started
            status = client.get(study_url, headers=headers).json()["status"]
            supervisor.stop()
        engine.dispose()

    print(
        f"{jobs} training jobs ({args.configs} configs × {args.folds} folds × {args.seeds} seeds), "
        f"{args.concurrency} at a time; study {status}"
    )
    print(f"  one by one (POST /v1/jobs each): {one_by_one:7.1f} s  ({one_by_one / jobs:.2f} s per job)")
    print(f"  as a study (incl. pooling):      {as_study:7.1f} s  ({as_study / jobs:.2f} s per job)")
    print(f"  study overhead per job: {(as_study - one_by_one) / jobs:+.2f} s; ratio {as_study / one_by_one:.2f}×")


if __name__ == "__main__":
    main()
