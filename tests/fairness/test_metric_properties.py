"""Property-based agreement with scikit-learn, Fairlearn's MetricFrame and brute-force definitions,
on small random data with ties, tiny groups, single-class groups, missing values and empty
intersections."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_negative_rate,
    true_positive_rate,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score
from synth import grouping

from app.fairness.engine import PredictionSet, build_report, metric_rows

SCORES = [0.0, 0.1, 0.3, 0.5, 0.5, 0.7, 0.9, 1.0]  # few values: many ties, some at the threshold


@st.composite
def datasets(draw: st.DrawFn, allow_missing: bool = True) -> PredictionSet:
    n = draw(st.integers(1, 40))
    a_levels = ["x", "y", "z", None] if allow_missing else ["x", "y", "z"]
    y = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    scores = draw(st.lists(st.sampled_from(SCORES), min_size=n, max_size=n))
    a = draw(st.lists(st.sampled_from(a_levels), min_size=n, max_size=n))
    b = draw(st.lists(st.sampled_from(["p", "q"]), min_size=n, max_size=n))
    return PredictionSet(
        y_true=np.array(y),
        exit_scores=np.array(scores)[:, None],
        groups={"a": np.array(a, dtype=object), "b": np.array(b, dtype=object)},
        threshold=0.5,
    )


def _members(p: PredictionSet, attribute: str, levels: dict[str, str]) -> np.ndarray:
    if attribute == "overall":
        return np.ones(len(p.y_true), dtype=bool)
    mask = np.ones(len(p.y_true), dtype=bool)
    for name, value in levels.items():
        mask &= np.array([v == value for v in p.groups[name]])
    return mask


def _brute_pf(scores: np.ndarray, y: np.ndarray, members: np.ndarray) -> float:
    pos, neg = scores[(y == 1) & members], scores[y == 0]
    wins = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return float(wins.mean())


SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(datasets())
def test_auc_pf_and_rates_match_definitions(p: PredictionSet) -> None:
    report = build_report(p, attributes=["a", "b"], n_boot=0, min_count=1)
    y, s = p.y_true, p.exit_scores[:, 0]
    pred = s >= p.threshold
    attributes = ["overall", "a", "b", "a×b"]
    observed = {(x, q) for x, q in zip(p.groups["a"], p.groups["b"], strict=True) if x is not None}
    labels = grouping(report, "a×b")["groups"]
    assert {(g["levels"]["a"], g["levels"]["b"]) for g in labels} == observed  # only observed cells
    for attribute in attributes:
        for g in grouping(report, attribute)["groups"]:
            m = _members(p, attribute, g["levels"])
            metrics = g["metrics"]
            assert g["n"] == m.sum() and g["n_pos"] == (y[m] == 1).sum()
            if len(set(y[m])) == 2:
                assert metrics["auc"]["value"] == pytest.approx(roc_auc_score(y[m], s[m]), abs=1e-12)
            else:
                assert metrics["auc"]["status"] == "undefined" and metrics["auc"]["value"] is None
            if (y[m] == 1).any() and (y == 0).any():
                assert metrics["pf"]["value"] == pytest.approx(_brute_pf(s, y, m), abs=1e-12)
            else:
                assert metrics["pf"]["value"] is None
            pos, neg = m & (y == 1), m & (y == 0)
            for name, num, den in (
                ("tpr", pos & pred, pos),
                ("fpr", neg & pred, neg),
                ("ppv", pos & pred, m & pred),
                ("npv", neg & ~pred, m & ~pred),
                ("selection_rate", m & pred, m),
            ):
                if den.sum():
                    assert metrics[name]["value"] == pytest.approx(num.sum() / den.sum(), abs=1e-12)
                    assert metrics[name]["ci_low"] <= metrics[name]["value"] <= metrics[name]["ci_high"]
                else:
                    assert metrics[name]["status"] == "undefined" and metrics[name]["value"] is None
            bins = np.minimum((s[m] * 10).astype(int), 9)
            ece = sum(abs((s[m] - y[m])[bins == k].sum()) for k in range(10)) / m.sum()
            assert metrics["ece"]["value"] == pytest.approx(ece, abs=1e-12)
            assert metrics["brier"]["value"] == pytest.approx(((s[m] - y[m]) ** 2).mean(), abs=1e-12)


def _fairlearn_table(frame: MetricFrame, method: str) -> dict[str, float]:
    """Fairlearn's eight difference/ratio functions, each exactly as its source defines it on a
    MetricFrame (one frame instead of one per function keeps the test fast)."""
    diff, ratio = frame.difference(method=method), frame.ratio(method=method)
    eo_diff, eo_ratio = diff[["tpr", "fpr"]], ratio[["tpr", "fpr"]]
    return {
        "demographic_parity_difference": diff["selection_rate"],
        "demographic_parity_ratio": ratio["selection_rate"],
        "equalized_odds_difference": max(eo_diff),
        "equalized_odds_difference_mean": eo_diff.mean(),
        "equalized_odds_ratio": min(eo_ratio),
        "equalized_odds_ratio_mean": eo_ratio.mean(),
        "equal_opportunity_difference": diff["tpr"],
        "equal_opportunity_ratio": ratio["tpr"],
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets())
def test_fairlearn_block_equals_metric_frame(p: PredictionSet) -> None:
    report = build_report(p, attributes=["a", "b"], n_boot=0, min_count=1)
    y, pred = p.y_true, (p.exit_scores[:, 0] >= p.threshold).astype(int)
    observed = np.array([v is not None for v in p.groups["a"]])
    if not observed.any():
        return
    frames = {
        "a": pd.Series(p.groups["a"][observed], name="a"),
        "a×b": pd.DataFrame({"a": p.groups["a"][observed], "b": p.groups["b"][observed]}),
    }
    metrics = {
        "selection_rate": selection_rate,
        "tpr": true_positive_rate,
        "fpr": false_positive_rate,
        "tnr": true_negative_rate,
        "fnr": false_negative_rate,
    }
    yt, yp = y[observed], pred[observed]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for attribute, features in frames.items():
            block = grouping(report, attribute)["fairlearn"]
            frame = MetricFrame(metrics=metrics, y_true=yt, y_pred=yp, sensitive_features=features)
            for key, row in frame.by_group.iterrows():
                keys = key if isinstance(key, tuple) else (key,)
                label = keys[0] if attribute == "a" else f"a={keys[0]}, b={keys[1]}"
                if row.isna().all():  # Fairlearn lists empty combinations as NaN; the report has no such cell
                    assert label not in block["by_group"]
                    continue
                for name in metrics:
                    assert block["by_group"][label][name] == pytest.approx(row[name], abs=1e-12)
            for name in metrics:
                assert block["overall"][name] == pytest.approx(frame.overall[name], abs=1e-12)
            for method in ("between_groups", "to_overall"):
                for name, expected in _fairlearn_table(frame, method).items():
                    got = block[method][name]
                    if np.isnan(expected):
                        assert got is None, (attribute, method, name)
                    else:
                        assert got == pytest.approx(expected, abs=1e-12), (attribute, method, name)


@SETTINGS
@given(datasets(allow_missing=False))
def test_overall_auc_is_the_positive_weighted_mean_of_pf(p: PredictionSet) -> None:
    y = p.y_true
    if len(set(y)) < 2:
        return
    report = build_report(p, attributes=["a", "b"], n_boot=0, min_count=1)
    auc = grouping(report, "overall")["groups"][0]["metrics"]["auc"]["value"]
    for attribute in ("a", "b", "a×b"):
        groups = grouping(report, attribute)["groups"]
        total = sum(g["n_pos"] / y.sum() * (g["metrics"]["pf"]["value"] or 0.0) for g in groups)
        assert total == pytest.approx(auc, abs=1e-12)
        pf = [g["metrics"]["pf"]["value"] for g in groups if g["n_pos"]]
        assert min(pf) - 1e-12 <= auc <= max(pf) + 1e-12


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets())
def test_bootstrap_on_degenerate_data_gives_strict_json_and_no_fake_zeros(p: PredictionSet) -> None:
    report = build_report(p, attributes=["a", "b"], n_boot=5, min_count=2)
    json.dumps(report, allow_nan=False)
    for row in metric_rows(report):
        assert row["status"] in {"ok", "undefined", "insufficient"}
        if row["status"] == "undefined":
            assert row["value"] is None and row["ci_low"] is None
        elif row["ci_low"] is not None:
            assert row["ci_low"] <= row["ci_high"]
