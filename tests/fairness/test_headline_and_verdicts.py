"""Plain-language outputs: a gap that leaves groups out says so in the verdict, and a paired
comparison gives one verdict per attribute (better / worse / not distinguishable from noise)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from synth import simulate

from app.fairness.engine import PredictionSet, build_report, compare_models
from app.fairness.report_html import render_html


def _skin_with_small_dark_types(seed: int) -> PredictionSet:
    """Types I–III: 300 images each; IV–VI: 3 positives and 5 negatives each (insufficient)."""
    rng = np.random.default_rng(seed)
    skin, y = [], []
    for label in ("I", "II", "III"):
        skin += [label] * 300
        y += list((rng.random(300) < 0.3).astype(int))
    for label in ("IV", "V", "VI"):
        skin += [label] * 8
        y += [1, 1, 1, 0, 0, 0, 0, 0]
    y_arr = np.array(y)
    scores = 1.0 / (1.0 + np.exp(-(rng.normal(0.0, 1.0, len(y)) + 1.5 * y_arr - 1.0)))
    return PredictionSet(
        y_true=y_arr, exit_scores=scores[:, None], groups={"skin_type": np.array(skin, dtype=object)}, threshold=0.5
    )


def test_a_gap_that_leaves_groups_out_says_so_in_the_verdict_and_the_page() -> None:
    report = build_report(_skin_with_small_dark_types(0), attributes=["skin_type"], n_boot=50, min_count=10)
    assert "(IV, V, VI left out: insufficient)" in report["summary"]["verdict"]
    assert all(f["left_out"] for f in report["summary"]["findings"])
    page = render_html(report)
    assert "(IV, V, VI left out: insufficient)" in page
    assert 'class="leftout"' in page


def test_a_verdict_over_every_group_names_no_left_out_group() -> None:
    report = build_report(simulate(3000, 1), attributes=["sex"], n_boot=50)
    assert "left out" not in report["summary"]["verdict"]


def _two_groups(seed: int, separation_b: float, noise: float = 0.0) -> PredictionSet:
    """Groups A and B, 2,000 images each; B's positives are ``separation_b`` apart from negatives
    (A's: 1.5). The same seed gives the same patients and labels."""
    rng = np.random.default_rng(seed)
    n = 4000
    group = np.where(np.arange(n) < n // 2, "A", "B").astype(object)
    y = (rng.random(n) < 0.3).astype(np.int64)
    base = rng.normal(0.0, 1.0, n)
    separation = np.where(group == "A", 1.5, separation_b)
    jitter = np.random.default_rng(seed + 1000 + int(separation_b * 100)).normal(0.0, noise, n)
    scores = 1.0 / (1.0 + np.exp(-(base + separation * y + jitter - 1.0)))
    return PredictionSet(
        y_true=y, exit_scores=scores[:, None], groups={"grp": group}, threshold=0.5, sample_ids=np.arange(n)
    )


def _verdict(result: dict, attribute: str) -> dict:
    return next(v for v in result["comparisons"][0]["verdicts"] if v["attribute"] == attribute)


def test_verdicts_on_models_clearly_better_worse_and_equal() -> None:
    biased, fair = _two_groups(3, separation_b=0.3), _two_groups(3, separation_b=1.5)
    kwargs = dict(attributes=["grp"], n_boot=200, seed=1)

    better = _verdict(compare_models({"biased": biased, "fair": fair}, **kwargs), "grp")
    assert better["verdict"] == "better" and "pfd" in better["better"] and not better["worse"]

    worse = _verdict(compare_models({"fair": fair, "biased": biased}, **kwargs), "grp")
    assert worse["verdict"] == "worse" and "pfd" in worse["worse"] and "worst_group_auc" in worse["worse"]

    same = compare_models({"fair": fair, "fair again": _two_groups(3, separation_b=1.5, noise=0.02)}, **kwargs)
    assert _verdict(same, "grp") == {
        "attribute": "grp",
        "verdict": "not distinguishable from noise",
        "better": [],
        "worse": [],
    }
    assert _verdict(same, "overall")["verdict"] == "not distinguishable from noise"
    assert same["comparisons"][0]["differences"][0]["metric"] == "auc"  # existing keys unchanged


def test_compute_difference_of_the_served_policies() -> None:
    reference = _two_groups(4, separation_b=1.5)
    n = len(reference.y_true)
    early = PredictionSet(
        y_true=reference.y_true,
        exit_scores=np.repeat(reference.exit_scores, 2, axis=1),
        groups=reference.groups,
        threshold=0.5,
        exit_index=(np.arange(n) % 2).astype(np.int64),  # half leave at exit 0 (cost 0.4)
        exit_cost=np.array([0.4, 1.0]),
        sample_ids=reference.sample_ids,
    )
    compute = compare_models({"full": reference, "early": early}, attributes=["grp"], n_boot=200)["comparisons"][0][
        "compute"
    ]
    assert compute["value_reference"] == 1.0
    assert compute["value_model"] == pytest.approx(0.7)
    assert compute["difference"] == pytest.approx(-0.3)
    assert compute["ci_low"] < -0.3 < compute["ci_high"] and compute["ci_high"] - compute["ci_low"] < 0.05
    unknown = dataclasses.replace(early, exit_cost=None)
    assert (
        compare_models({"full": reference, "x": unknown}, attributes=["grp"], n_boot=20)["comparisons"][0]["compute"]
        is None
    )
