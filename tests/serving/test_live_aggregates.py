"""Live monitoring aggregates: kept incrementally, they equal a recount of the rows; windows select
the right predictions and outcomes; concurrent outcome posts keep exact counts (both databases)."""

from __future__ import annotations

import threading

import numpy as np
from monitoring_helpers import organisation_id, recount, register_model, served_rows, store, stored_cells
from sqlalchemy import select

from app.db.engine import transaction
from app.fairness.engine.ranking import auc
from app.serving import aggregates
from app.serving.models import ModelVersion, Prediction
from app.serving.schemas import OutcomeIn
from app.serving.service import record_outcome

SEXES = ["female", "male", None]
AGES = ["18-39", "40-59", "60-79"]


def _demographics(rng: np.random.Generator, n: int) -> list[dict | None]:
    out: list[dict | None] = []
    for _ in range(n):
        d = {"sex": SEXES[rng.integers(3)], "age": AGES[rng.integers(3)]}
        out.append(None if rng.random() < 0.05 else d)
    return out


def _groups(body: dict, attribute: str) -> dict[str, dict]:
    grouping = next(g for g in body["metrics"] if g["attribute"] == attribute)
    return {g["group"]: g for g in grouping["groups"]}


def test_aggregates_equal_a_recount_and_windows_select_rows(client, keys, session_factory, monkeypatch):
    monkeypatch.setattr(aggregates, "BLOCK", 64)  # so a window of 100 outcomes spans whole blocks and a part
    rng = np.random.default_rng(7)
    model_id = register_model(session_factory, n_exits=3)
    org = organisation_id(session_factory)
    n = 400
    y = rng.integers(0, 2, n)
    scores = np.clip(rng.normal(0.35 + 0.3 * y, 0.18), 0, 1)
    days_ago = rng.integers(0, 5, n)
    demographics = _demographics(rng, n)
    rows = served_rows(model_id, org, scores, demographics, exits=rng.integers(0, 3, n), days_ago=days_ago)
    ids = [store(client.app.state.row_writer, rows[i : i + 64]) for i in range(0, n, 64)]
    ids = [i for chunk in ids for i in chunk]
    predictor, reader = keys.headers(role="predictor"), keys.headers()
    posted = list(range(300))
    for k in posted:
        assert (
            client.post(f"/v1/predictions/{ids[k]}/outcome", headers=predictor, json={"outcome": int(y[k])}).status_code
            == 200
        )
    # a correction: prediction 5's outcome flips, and it becomes the latest outcome
    y[5] = 1 - y[5]
    assert (
        client.post(f"/v1/predictions/{ids[5]}/outcome", headers=predictor, json={"outcome": int(y[5])}).status_code
        == 200
    )
    assert stored_cells(session_factory, model_id) == recount(session_factory, model_id)

    url = f"/v1/models/{model_id}/monitoring"
    everything = client.get(url, headers=reader).json()
    assert everything["n_predictions"] == n and everything["n_with_outcome"] == 300
    assert everything["exit_counts"] == np.bincount([r["exit_index"] for r in rows], minlength=3).tolist()
    sex = [(d or {}).get("sex") for d in demographics]
    for group, got in _groups(everything, "sex").items():
        members = [k for k in posted if sex[k] == group]
        labels = np.array([rows[k]["label"] for k in members])
        truth = y[members]
        assert (got["n"], got["n_pos"]) == (len(members), int(truth.sum()))
        tpr = got["metrics"]["tpr"]
        assert tpr["value"] == (labels[truth == 1] == 1).mean()
        assert tpr["ci_low"] <= tpr["value"] <= tpr["ci_high"]
        exact = auc(truth, scores[members])
        assert abs(got["metrics"]["auc"]["value"] - exact) < 0.01  # binned scores: ties within 1/100
    recent = client.get(url, headers=reader, params={"days": 2}).json()
    assert recent["n_predictions"] == int((days_ago < 2).sum())
    assert recent["n_with_outcome"] == 300  # every outcome was recorded today

    last = client.get(url, headers=reader, params={"last_outcomes": 100}).json()
    window = [*posted[-99:], 5]  # outcome numbers 202..301: the last 99 first posts and the correction
    assert last["n_with_outcome"] == 100
    overall = _groups(last, "overall")["all"]
    assert (overall["n_pos"], overall["n_neg"]) == (int(y[window].sum()), int((1 - y[window]).sum()))
    tp = sum(1 for k in window if y[k] == 1 and rows[k]["label"] == 1)
    assert overall["metrics"]["tpr"]["value"] == tp / y[window].sum()
    assert client.get(url, headers=reader, params={"last_outcomes": 0}).status_code == 422
    both = client.get(url, headers=reader, params={"last_outcomes": 10, "days": 1})
    assert both.status_code == 422 and both.json()["errors"][0]["field"] == "query.last_outcomes"


def test_concurrent_outcome_posts_keep_exact_counts(client, session_factory, settings):
    rng = np.random.default_rng(3)
    model_id = register_model(session_factory)
    org = organisation_id(session_factory)
    n, n_threads = 40, 4
    rows = served_rows(model_id, org, rng.random(n), _demographics(rng, n))
    ids = store(client.app.state.row_writer, rows)
    errors: list[BaseException] = []

    def post(worker: int) -> None:  # every thread posts every prediction's outcome, in its own order
        try:
            for k in np.random.default_rng(worker).permutation(n):
                with transaction(session_factory) as session:
                    record_outcome(session, settings, org, ids[k], OutcomeIn(outcome=(worker + int(k)) % 2))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(w,)) for w in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert stored_cells(session_factory, model_id) == recount(session_factory, model_id)
    with session_factory() as session:
        assert session.get(ModelVersion, model_id).last_outcome_seq == n * n_threads
        seqs = session.scalars(select(Prediction.outcome_seq).where(Prediction.model_version_id == model_id)).all()
    assert len(set(seqs)) == n  # each prediction holds its latest outcome's own number
    confusion = sum(
        count
        for key, count in stored_cells(session_factory, model_id).items()
        if key.attribute == "overall"
        and key.cell in ("tp", "fp", "tn", "fn")
        and key.day == key.block == aggregates.ALL
    )
    assert confusion == n
