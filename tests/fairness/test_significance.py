"""Holm adjustment, the two-proportion test, and group-vs-rest tests on planted differences."""

from __future__ import annotations

import numpy as np
import pytest
from synth import grouping, simulate

from app.fairness.engine import build_report
from app.fairness.engine.significance import bootstrap_wald, holm, two_proportion


def test_holm_on_a_known_example() -> None:
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 -> monotone 0.06
    p = np.array([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_ignores_untested_entries() -> None:
    p = np.array([0.5, np.nan, 0.2, 0.9])
    adjusted = holm(p)
    assert np.isnan(adjusted[1])
    np.testing.assert_allclose(adjusted[[0, 2, 3]], [1.0, 0.6, 1.0])  # 0.5·2 = 1.0, then monotone


def test_two_proportion_test_matches_the_textbook_formula() -> None:
    diff, z, p = two_proportion(np.array([30]), np.array([100]), np.array([50]), np.array([100]))
    pooled = 0.4
    expected_z = -0.2 / np.sqrt(pooled * (1 - pooled) * (2 / 100))
    assert diff[0] == pytest.approx(-0.2)
    assert z[0] == pytest.approx(expected_z)
    assert p[0] == pytest.approx(0.003892, abs=1e-5)


def test_two_proportion_test_of_identical_all_zero_groups_is_one() -> None:
    _, z, p = two_proportion(np.array([0]), np.array([20]), np.array([0]), np.array([30]))
    assert z[0] == 0.0 and p[0] == 1.0


def test_bootstrap_wald_of_a_zero_difference_without_spread_is_one() -> None:
    _z, p = bootstrap_wald(np.array([0.0, 0.1]), np.zeros((50, 2)))
    assert p[0] == 1.0 and p[1] == 0.0


def test_a_planted_disparity_is_flagged_and_named() -> None:
    report = build_report(simulate(6000, 11, group_shift=1.0), attributes=["sex", "skin_type"], n_boot=200)
    skin = grouping(report, "skin_type")
    pf_tests = {t["group"]: t for t in skin["tests"]["pf"]}
    assert pf_tests["VI"]["p_holm"] < 0.001
    assert pf_tests["VI"]["difference"] < 0
    assert skin["gaps"]["pfd"]["p_value"] < 0.001
    # Holm-adjusted p-values are never below the raw ones.
    for family in skin["tests"].values():
        for t in family:
            if t["p_value"] is not None:
                assert t["p_holm"] >= t["p_value"]
    summary = report["summary"]
    assert summary["largest_significant_gap"]["attribute"] == "skin_type"
    assert "skin_type" in summary["verdict"]
    sex_pf = [t["p_holm"] for t in grouping(report, "sex")["tests"]["pf"]]
    assert min(sex_pf) > 0.01  # no planted difference by sex
