"""Statuses (ok / undefined / insufficient), and gaps that skip non-ok groups and say so."""

from __future__ import annotations

import json

import numpy as np
import pytest
from synth import group, grouping

from app.fairness.engine import PredictionSet, build_report


def _predictions() -> PredictionSet:
    """Groups: A (200, both classes), B (200, both), C (60, only negatives), D (60, 5 positives)."""
    rng = np.random.default_rng(7)
    sizes = {"A": 200, "B": 200, "C": 60, "D": 60}
    labels = np.concatenate([np.full(k, g, dtype=object) for g, k in sizes.items()])
    y = np.concatenate(
        [
            (rng.random(200) < 0.4).astype(int),
            (rng.random(200) < 0.4).astype(int),
            np.zeros(60, dtype=int),
            np.r_[np.ones(5, dtype=int), np.zeros(55, dtype=int)],
        ]
    )
    shift = np.where(labels == "B", 0.3, 1.5)
    scores = 1.0 / (1.0 + np.exp(-(rng.normal(0, 1, len(y)) + shift * y - 0.5)))
    return PredictionSet(y_true=y, exit_scores=scores[:, None], groups={"g": labels}, threshold=0.5)


@pytest.fixture(scope="module")
def report() -> dict:
    return build_report(_predictions(), attributes=["g"], n_boot=200, seed=1)


def test_empty_denominators_are_undefined_never_zero(report: dict) -> None:
    c = group(report, "g", "C")["metrics"]
    for metric in ("tpr", "fnr", "auc", "pf"):
        assert c[metric]["status"] == "undefined"
        assert c[metric]["value"] is None and c[metric]["ci_low"] is None
    assert c["fpr"]["status"] == "ok" and c["fpr"]["value"] is not None
    assert c["prevalence"]["value"] == 0.0  # a real zero: 0 positives out of 60


def test_small_denominators_are_insufficient_but_reported(report: dict) -> None:
    d = group(report, "g", "D")["metrics"]
    for metric in ("tpr", "auc", "pf"):
        assert d[metric]["status"] == "insufficient"
        assert d[metric]["value"] is not None
        assert d[metric]["ci_low"] <= d[metric]["value"] <= d[metric]["ci_high"]
    assert d["tpr"]["n"] == 5
    assert d["fpr"]["status"] == "ok"


def test_min_count_is_configurable() -> None:
    report = build_report(_predictions(), attributes=["g"], n_boot=0, min_count=5)
    assert group(report, "g", "D")["metrics"]["tpr"]["status"] == "ok"


def test_gaps_use_ok_groups_only_and_list_the_others(report: dict) -> None:
    entry = grouping(report, "g")
    tpr = {g["group"]: g["metrics"]["tpr"]["value"] for g in entry["groups"]}
    eopp1 = entry["gaps"]["eopp1"]
    assert eopp1["groups_used"] == ["A", "B"]
    assert eopp1["left_out"] == [{"group": "C", "status": "undefined"}, {"group": "D", "status": "insufficient"}]
    assert eopp1["value"] == pytest.approx(abs(tpr["A"] - tpr["B"]))
    assert eopp1["ci_low"] <= eopp1["value"] <= eopp1["ci_high"]
    # FPR is ok in every group, so the TNR gap uses all four.
    tnr = [g["metrics"]["tnr"]["value"] for g in entry["groups"]]
    assert entry["gaps"]["eopp0"]["groups_used"] == ["A", "B", "C", "D"]
    assert entry["gaps"]["eopp0"]["value"] == pytest.approx(max(tnr) - min(tnr))
    # The equalized-odds family needs TPR and FPR both ok.
    assert entry["gaps"]["eodd"]["groups_used"] == ["A", "B"]
    pf = {g["group"]: g["metrics"]["pf"]["value"] for g in entry["groups"]}
    assert entry["gaps"]["pfd"]["value"] == pytest.approx(abs(pf["A"] - pf["B"]))


def test_eodd_generalises_the_two_group_definition(report: dict) -> None:
    entry = grouping(report, "g")
    m = {g["group"]: g["metrics"] for g in entry["groups"]}
    d_tpr = m["A"]["tpr"]["value"] - m["B"]["tpr"]["value"]
    d_fpr = m["A"]["fpr"]["value"] - m["B"]["fpr"]["value"]
    assert entry["gaps"]["eodd"]["value"] == pytest.approx(abs(d_tpr + d_fpr) / 2)


def test_a_gap_without_two_ok_groups_has_no_value() -> None:
    rng = np.random.default_rng(3)
    y = np.r_[(rng.random(100) < 0.5).astype(int), np.zeros(40, dtype=int)]
    labels = np.array(["big"] * 100 + ["neg-only"] * 40, dtype=object)
    p = PredictionSet(y_true=y, exit_scores=rng.random(140)[:, None], groups={"g": labels}, threshold=0.5)
    gaps = grouping(build_report(p, attributes=["g"], n_boot=20), "g")["gaps"]
    assert gaps["eopp1"]["status"] == "undefined" and gaps["eopp1"]["value"] is None
    assert gaps["eopp0"]["status"] == "ok"


def test_a_ratio_with_all_rates_zero_is_undefined() -> None:
    rng = np.random.default_rng(4)
    y = (rng.random(200) < 0.5).astype(int)
    labels = rng.choice(np.array(["a", "b"], dtype=object), 200)
    p = PredictionSet(y_true=y, exit_scores=np.full((200, 1), 0.1), groups={"g": labels}, threshold=0.5)
    gaps = grouping(build_report(p, attributes=["g"], n_boot=20), "g")["gaps"]
    assert gaps["demographic_parity_difference"]["value"] == 0.0
    assert gaps["demographic_parity_ratio"]["status"] == "undefined"
    assert gaps["demographic_parity_ratio"]["value"] is None


def test_missing_values_join_no_group_but_stay_in_overall() -> None:
    rng = np.random.default_rng(5)
    labels = rng.choice(np.array(["a", "b", None], dtype=object), 300)
    labels[:3] = [None, float("nan"), None]
    y = (rng.random(300) < 0.4).astype(int)
    p = PredictionSet(y_true=y, exit_scores=rng.random(300)[:, None], groups={"g": labels}, threshold=0.5)
    report = build_report(p, attributes=["g"], n_boot=10)
    entry = grouping(report, "g")
    missing = sum(1 for v in labels if v is None or v != v)
    assert entry["n_missing"] == missing
    assert sum(g["n"] for g in entry["groups"]) == 300 - missing
    assert [g["group"] for g in entry["groups"]] == ["a", "b"]
    assert grouping(report, "overall")["groups"][0]["n"] == 300


def test_report_is_strict_json(report: dict) -> None:
    text = json.dumps(report, allow_nan=False)
    assert "NaN" not in text


def test_invalid_inputs_are_rejected() -> None:
    p = _predictions()
    with pytest.raises(ValueError, match="unknown attribute"):
        build_report(p, attributes=["nope"], n_boot=0)
    bad = PredictionSet(y_true=np.array([0, 2]), exit_scores=np.array([[0.1], [0.2]]), groups={}, threshold=0.5)
    with pytest.raises(ValueError, match="0/1"):
        build_report(bad, attributes=[], n_boot=0)
    bad = PredictionSet(y_true=np.array([0, 1]), exit_scores=np.array([[0.1], [1.2]]), groups={}, threshold=0.5)
    with pytest.raises(ValueError, match="probabilities"):
        build_report(bad, attributes=[], n_boot=0)
