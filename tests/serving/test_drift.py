"""Drift without outcomes: PSI and KS of served scores against the audit's, and exit-rate shift."""

from __future__ import annotations

import numpy as np
from monitoring_helpers import organisation_id, register_model, served_rows, store

from app.db.engine import transaction
from app.fairness.engine.inputs import PredictionSet
from app.fairness.engine.live import ks, psi
from app.fairness.models import Evaluation
from app.fairness.storage import evaluation_dir, save_predictions
from app.serving.aggregates import N_SCORE_BINS


def _hist(scores: np.ndarray) -> np.ndarray:
    return np.bincount(np.minimum((scores * N_SCORE_BINS).astype(int), N_SCORE_BINS - 1), minlength=N_SCORE_BINS)


def test_psi_and_ks_separate_shifted_from_unshifted_scores():
    rng = np.random.default_rng(0)
    audit = _hist(rng.beta(2, 5, 5000))
    same = _hist(rng.beta(2, 5, 5000))
    shifted = _hist(rng.beta(5, 2, 5000))
    assert psi(audit, same) < 0.02 and ks(audit, same) < 0.05
    assert psi(audit, shifted) > 1.0 and ks(audit, shifted) > 0.5
    assert psi(audit, audit) == 0.0 and ks(audit, audit) == 0.0
    assert np.isnan(ks(audit, np.zeros(N_SCORE_BINS)))


def test_monitoring_reports_drift_of_one_group_against_the_audit(client, keys, session_factory, settings):
    rng = np.random.default_rng(1)
    model_id = register_model(session_factory, n_exits=2)
    org = organisation_id(session_factory)
    n = 2000
    sex = np.array(["female", "male"] * (n // 2), dtype=object)
    audit_scores = rng.beta(2, 5, n)
    audit_exits = rng.integers(0, 2, n)
    predictions = PredictionSet(
        y_true=rng.integers(0, 2, n),
        exit_scores=np.column_stack([audit_scores, audit_scores]),
        groups={"sex": sex},
        threshold=0.5,
        exit_index=audit_exits,
    )
    with transaction(session_factory) as session:
        evaluation = Evaluation(
            organisation_id=org,
            kind="training",
            status="ready",
            model_version_id=model_id,
            config={},
            metric_definition_version="1.0",
        )
        session.add(evaluation)
        session.flush()
        evaluation_id = evaluation.id
    save_predictions(evaluation_dir(settings, evaluation_id), predictions)

    # served: women's scores shift up and they all leave at the first exit; men's do not
    female = sex == "female"
    served = np.where(female, rng.beta(5, 2, n), rng.beta(2, 5, n))
    exits = np.where(female, 0, rng.integers(0, 2, n))
    rows = served_rows(model_id, org, served, [{"sex": s} for s in sex], exits=exits)
    store(client.app.state.row_writer, rows)

    body = client.get(f"/v1/models/{model_id}/monitoring", headers=keys.headers()).json()
    assert body["drift"]["evaluation_id"] == evaluation_id
    drift = {(g["attribute"], g["group"]): g for g in body["drift"]["groups"]}
    women, men = drift["sex", "female"], drift["sex", "male"]
    assert (women["n"], women["audit_n"]) == (n // 2, n // 2)
    assert women["psi"] > 1.0 and women["ks"] > 0.5 and women["exit_rate_shift"] > 0.3
    assert men["psi"] < 0.05 and men["ks"] < 0.1 and men["exit_rate_shift"] < 0.1
