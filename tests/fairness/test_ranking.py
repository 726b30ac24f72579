"""Model selection's AUC, PF and PFD (``engine.ranking``) are the report's numbers, not a second copy."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from synth import group, grouping, simulate

from app.fairness.engine import build_report
from app.fairness.engine.ranking import auc, pfd, positive_fractions


def test_selection_metrics_equal_the_reports_point_estimates() -> None:
    predictions = simulate(3000, seed=7, group_shift=0.8, missing=0.1)
    y, s = predictions.y_true, np.round(predictions.policy_scores, 2)  # rounded: many ties
    predictions = replace(predictions, exit_scores=s[:, None])
    report = build_report(predictions, attributes=["skin_type", "age_group"], intersections=False, n_boot=0)

    assert auc(y, s) == pytest.approx(group(report, "overall", "all")["metrics"]["auc"]["value"], abs=1e-12)
    for attribute in ("skin_type", "age_group"):
        labels = grouping(report, attribute)["groups"]
        names = [g["group"] for g in labels]
        values = predictions.groups[attribute]
        codes = np.array([names.index(v) if v is not None else -1 for v in values])  # missing: no group
        pf = positive_fractions(y, s, codes, len(names))
        expected = [g["metrics"]["pf"]["value"] for g in labels]
        np.testing.assert_allclose(pf, expected, rtol=0, atol=1e-12)
        assert pfd(pf) == pytest.approx(grouping(report, attribute)["gaps"]["pfd"]["value"], abs=1e-12)


def test_undefined_values_are_nan_never_zero() -> None:
    y = np.array([0, 0, 1, 1, 0])
    s = np.array([0.1, 0.4, 0.4, 0.9, 0.2])
    codes = np.array([0, 1, 0, -1, 1])  # group 1 has no positive; one positive is in no group
    pf = positive_fractions(y, s, codes, 2)
    assert pf[0] == pytest.approx(2.5 / 3)  # 0.4 beats 0.1 and 0.2, ties 0.4: (2 + ½) / 3
    assert np.isnan(pf[1])
    assert np.isnan(pfd(pf))
    assert np.isnan(auc(np.zeros(4, dtype=int), np.arange(4.0)))
    assert np.isnan(auc(np.array([], dtype=int), np.array([])))
    assert np.isnan(positive_fractions(np.ones(3, dtype=int), np.arange(3.0), np.zeros(3, dtype=int), 1)).all()
