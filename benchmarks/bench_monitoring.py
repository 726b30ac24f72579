"""Live monitoring over many stored predictions: the aggregate-backed GET against the old full reload.

Stores ``--n`` predictions (default 1,000,000; demographics sex 2 × age group 4 × skin type 6, spread
over ``--days`` days, ``--outcome-share`` of them with an outcome) of one model in a fresh SQLite
database (bulk inserts, aggregates counted the way the migration backfills them), then times
``GET /v1/models/{id}/monitoring`` through the app in process (key check included), all-time and
with 7-day, 30-day and last-10,000-outcomes windows. The reference, in the same run, is the previous
implementation (reload every prediction of the model, then the full report with
``--boot`` bootstrap resamples) on a second model with ``--old-n`` predictions, next to the new GET
on that same model. Last, what counting adds to storing one prediction (the group-commit writer
with and without the aggregate hook).

    .venv/bin/python benchmarks/bench_monitoring.py                 # 1,000,000 predictions
    .venv/bin/python benchmarks/bench_monitoring.py --n 200000 --old-n 10000   # quick
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import insert, select, update

from app.auth.service import create_key, ensure_organisation
from app.db.base import new_id, utcnow
from app.db.engine import make_engine, make_session_factory, transaction
from app.db.group_commit import GroupCommitWriter
from app.db.migrate import upgrade_to_head
from app.fairness.engine.inputs import PredictionSet
from app.fairness.evaluation import evaluate_predictions
from app.main import create_app
from app.serving import aggregates
from app.serving.models import PREDICTION_ID_PREFIX, ModelVersion, Prediction
from app.settings import Settings

BATCH = 50_000
ATTRIBUTES = {"sex": ["female", "male"], "age_group": ["18-39", "40-59", "60-79", "80+"], "skin_type": list("123456")}


def store(factory, model_id: str, org_id: str, n: int, days: int, outcome_share: float, seed: int) -> None:
    """Bulk-insert ``n`` predictions and their outcomes, then their aggregate cells."""
    rng = np.random.default_rng(seed)
    now, seq = utcnow(), 0
    step = timedelta(days=days) / n  # predictions arrive in time order, outcomes an hour after each
    for start in range(0, n, BATCH):
        m = min(BATCH, n - start)
        y = rng.integers(0, 2, m)
        scores = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
        known = rng.random(m) < outcome_share
        picks = {a: rng.integers(0, len(v), m) for a, v in ATTRIBUTES.items()}
        rows = []
        for k in range(m):
            at = now - step * (n - start - k)
            row = {
                "id": new_id(PREDICTION_ID_PREFIX),
                "created_at": at,
                "organisation_id": org_id,
                "model_version_id": model_id,
                "probability": float(scores[k]),
                "label": int(scores[k] >= 0.5),
                "exit_index": int(k % 3),
                "confidence": float(max(scores[k], 1 - scores[k])),
                "demographics": {a: ATTRIBUTES[a][picks[a][k]] for a in ATTRIBUTES},
                "outcome": None,
                "outcome_at": None,
                "outcome_seq": None,
            }
            if known[k]:
                seq += 1
                row.update(outcome=int(y[k]), outcome_at=at + timedelta(hours=1), outcome_seq=seq)
            rows.append(row)
        counts = aggregates.prediction_counts(rows)
        for row in rows:
            if row["outcome"] is not None:
                counts.update(
                    aggregates.outcome_counts(
                        model_id,
                        at=row["outcome_at"],
                        seq=row["outcome_seq"],
                        probability=row["probability"],
                        label=row["label"],
                        outcome=row["outcome"],
                        demographics=row["demographics"],
                    )
                )
        with transaction(factory) as session:
            session.execute(insert(Prediction), rows)
            aggregates.add(session.connection(), counts)
    with transaction(factory) as session:
        session.execute(update(ModelVersion).where(ModelVersion.id == model_id).values(last_outcome_seq=seq))


def old_monitor(factory, settings: Settings, model_id: str) -> None:
    """The previous GET: every prediction of the model reloaded, then the full bootstrapped report."""
    with factory() as session:
        rows = session.execute(
            select(Prediction.probability, Prediction.demographics, Prediction.outcome)
            .where(Prediction.model_version_id == model_id)
            .order_by(Prediction.created_at, Prediction.id)
        ).all()
    known = [r for r in rows if r.outcome is not None]
    attributes = sorted({k for r in known for k in r.demographics})
    predictions = PredictionSet(
        y_true=np.array([r.outcome for r in known], dtype=np.int64),
        exit_scores=np.array([[r.probability] for r in known], dtype=np.float64),
        groups={a: np.array([r.demographics.get(a) for r in known], dtype=object) for a in attributes},
        threshold=0.5,
    )
    evaluate_predictions(predictions, attributes=attributes, settings=settings)


def write_cost(engine, model_id: str, org_id: str, n: int) -> tuple[float, float]:
    """Median seconds to store one prediction through the group-commit writer (one waiting client),
    without and with the aggregate hook: what counting costs the prediction path."""
    rng = np.random.default_rng(2)
    medians = []
    for hooked in (False, True):
        writer = GroupCommitWriter(engine)
        if hooked:
            writer.after_insert(Prediction, aggregates.count_predictions)
        samples = []
        for _ in range(n):
            score = float(rng.random())
            row = {
                "id": new_id(PREDICTION_ID_PREFIX),
                "created_at": utcnow(),
                "organisation_id": org_id,
                "model_version_id": model_id,
                "probability": score,
                "label": int(score >= 0.5),
                "exit_index": 0,
                "confidence": max(score, 1 - score),
                "demographics": {a: v[0] for a, v in ATTRIBUTES.items()},
            }
            start = time.perf_counter()
            writer.submit(Prediction, [row]).result()
            samples.append(time.perf_counter() - start)
        writer.close()
        medians.append(statistics.median(samples))
    return medians[0], medians[1]


def timed(call: Callable[[], object], rounds: int) -> float:
    """Median seconds of ``rounds`` calls (after one warm-up)."""
    call()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--old-n", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--outcome-share", type=float, default=0.3)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--write-n", type=int, default=300, help="single-prediction writes timed")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = make_engine(url)
        upgrade_to_head(engine)
        factory = make_session_factory(engine)
        settings = Settings(
            environment="test",
            database_url=url,
            data_dir=Path(tmp) / "data",
            model_dir=Path(tmp) / "models",
            bootstrap_resamples=args.boot,
            alert_evaluation_enabled=False,
            webhook_delivery_enabled=False,
        )
        with transaction(factory) as session:
            org = ensure_organisation(session, "Bench").id
            _, key = create_key(session, org, "auditor")
            ids = []
            for _ in range(2):
                model = ModelVersion(
                    organisation_id=org,
                    method="erm",
                    backbone="small",
                    path="-",
                    sha256="0" * 64,
                    files={},
                    thresholds={"operating": 0.5, "exits": [0.9, 0.9, None]},
                    config={},
                )
                session.add(model)
                session.flush()
                ids.append(model.id)
        big, small = ids
        start = time.perf_counter()
        store(factory, big, org, args.n, args.days, args.outcome_share, seed=0)
        store(factory, small, org, args.old_n, args.days, args.outcome_share, seed=1)
        load_s = time.perf_counter() - start
        with factory() as session:
            cells = session.scalar(select(ModelVersion.last_outcome_seq).where(ModelVersion.id == big))
        headers = {"Authorization": f"Bearer {key}"}
        with TestClient(create_app(settings, run_supervisor=False)) as client:

            def get(model_id: str, **params: int) -> Callable[[], object]:
                def call() -> object:
                    response = client.get(f"/v1/models/{model_id}/monitoring", headers=headers, params=params)
                    assert response.status_code == 200, response.text
                    return response

                return call

            body = get(big)().json()
            assert body["n_predictions"] == args.n
            new_all = timed(get(big), args.rounds)
            new_week = timed(get(big, days=7), args.rounds)
            new_month = timed(get(big, days=30), args.rounds)
            new_last = timed(get(big, last_outcomes=10_000), args.rounds)
            new_small = timed(get(small), args.rounds)
        old_small = timed(lambda: old_monitor(factory, settings, small), max(1, args.rounds // 3))
        bare, counted = write_cost(engine, small, org, args.write_n)
        engine.dispose()

    print(f"stored {args.n:,} + {args.old_n:,} predictions ({cells:,} outcomes on the large model) in {load_s:.1f} s")
    print("| path | predictions | median ms |")
    print("|---|---|---|")
    print(f"| new GET, all time | {args.n:,} | {new_all * 1e3:.1f} |")
    print(f"| new GET, days=7 | {args.n:,} | {new_week * 1e3:.1f} |")
    print(f"| new GET, days=30 | {args.n:,} | {new_month * 1e3:.1f} |")
    print(f"| new GET, last_outcomes=10000 | {args.n:,} | {new_last * 1e3:.1f} |")
    print(f"| new GET, all time | {args.old_n:,} | {new_small * 1e3:.1f} |")
    print(f"| old full reload + {args.boot}-resample report | {args.old_n:,} | {old_small * 1e3:.1f} |")
    print(f"old on {args.old_n:,} / new on {args.old_n:,}: {old_small / new_small:.0f}x")
    print(f"old on {args.old_n:,} / new on {args.n:,}: {old_small / new_all:.0f}x")
    print(f"storing one prediction (group commit, SQLite): {bare * 1e3:.2f} ms bare, {counted * 1e3:.2f} ms counted")


if __name__ == "__main__":
    main()
