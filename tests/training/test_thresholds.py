"""Ranking metrics, operating thresholds and the exit-threshold choice."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from app.fairness.engine.ranking import auc, pfd, positive_fractions
from app.fairness.engine.thresholds import exit_index, specificity_threshold, youden_threshold
from app.training.thresholds import choose_exit_thresholds


def scores(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    codes = rng.integers(0, 3, n)
    s = np.round(rng.random(n) * 0.6 + 0.4 * y * (codes + 1) / 3, 2)  # ties on purpose
    return y, s, codes


def test_auc_and_pf_identity() -> None:
    y, s, codes = scores()
    assert auc(y, s) == pytest.approx(roc_auc_score(y, s))
    pf = positive_fractions(y, s, codes, 3)
    for k in range(3):
        mask = (y == 0) | (codes == k)
        assert pf[k] == pytest.approx(roc_auc_score(y[mask], s[mask]))
    weights = np.bincount(codes[y == 1], minlength=3) / (y == 1).sum()
    assert auc(y, s) == pytest.approx(float(weights @ pf))  # AUC = Σ n_k+/n+ · PF_k
    assert pfd(pf) == pytest.approx(pf.max() - pf.min())


def test_youden_matches_the_roc_curve() -> None:
    y, s, _ = scores()
    fpr, tpr, cut = roc_curve(y, s)
    t = youden_threshold(y, s)
    assert t == pytest.approx(cut[np.argmax(tpr - fpr)])


def test_specificity_threshold_is_the_most_sensitive_that_meets_the_target() -> None:
    y, s, _ = scores()
    t = specificity_threshold(y, s, 0.9)
    assert (s[y == 0] < t).mean() >= 0.9
    lower = np.max(s[s < t])
    assert (s[y == 0] < lower).mean() < 0.9


def test_exit_index_takes_the_first_confident_exit() -> None:
    probs = np.array([[0.95, 0.5, 0.5], [0.6, 0.02, 0.5], [0.6, 0.6, 0.3], [0.1, 0.9, 0.9]])
    assert exit_index(probs, [0.9, 0.9, None]).tolist() == [0, 1, 2, 0]
    assert exit_index(probs, [None, None, None]).tolist() == [2, 2, 2, 2]


def test_exit_choice_keeps_auc_and_prefers_fairer_then_cheaper() -> None:
    rng = np.random.default_rng(0)
    n = 600
    y = (rng.random(n) < 0.4).astype(int)
    codes = rng.integers(0, 2, n)
    final = np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(0, 0.15, n), 0.001, 0.999)
    early = np.where(codes == 1, final, 0.5)  # confident only for group 1, where it equals the final exit
    probs = np.stack([early, final], axis=1)
    choice = choose_exit_thresholds(
        y, probs, codes, 2, [0.3, 1.0], grid=[0.8, 0.9, 0.999], criterion="min_compute", tolerance=0.01
    )
    assert all(c.theta is None or c.auc >= auc(y, final) - 0.01 for c in [choice.chosen])
    assert choice.chosen.theta == 0.8  # same scores as the final exit, cheapest
    assert choice.thresholds == [0.8, None]
    strict = choose_exit_thresholds(
        y,
        np.stack([np.full(n, 0.99), final], axis=1),
        codes,
        2,
        [0.3, 1.0],
        grid=[0.8],
        criterion="min_pfd",
        tolerance=0.01,
    )
    assert strict.chosen.theta is None  # an exit that destroys AUC is never chosen
