"""Across-fold spread of pooled out-of-fold predictions: each fold's value is the engine's own report
on that fold's samples; folds too small for a metric are skipped and named."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from synth import grouping, simulate

from app.fairness.engine import build_report
from app.fairness.report_html import render_html

ATTRIBUTES = ["sex", "skin_type"]
SPREAD = ("auc", "pf", "tpr", "fpr")


def _pooled(n: int, n_folds: int, seed: int):
    p = simulate(n, seed, group_shift=0.8)
    labels = np.array([f"s0/f{k}" for k in np.random.default_rng(seed + 100).integers(0, n_folds, n)], dtype=object)
    return dataclasses.replace(p, folds=labels)


def _subset(p, mask: np.ndarray):
    return dataclasses.replace(
        p,
        y_true=p.y_true[mask],
        exit_scores=p.exit_scores[mask],
        groups={a: v[mask] for a, v in p.groups.items()},
        sample_ids=None,
        folds=None,
    )


def test_fold_mean_and_sd_are_those_of_the_per_fold_reports() -> None:
    p = _pooled(6000, 4, 3)
    report = build_report(p, attributes=ATTRIBUTES, intersections=False, n_boot=0)
    assert report["config"]["folds"] == ["s0/f0", "s0/f1", "s0/f2", "s0/f3"]
    per_fold = [
        build_report(_subset(p, p.folds == label), attributes=ATTRIBUTES, intersections=False, n_boot=0)
        for label in report["config"]["folds"]
    ]
    for attribute in ["overall", *ATTRIBUTES]:
        pooled = grouping(report, attribute)
        for g, entry in enumerate(pooled["groups"]):
            for metric in SPREAD:
                values = [grouping(r, attribute)["groups"][g]["metrics"][metric]["value"] for r in per_fold]
                spread = entry["metrics"][metric]["folds"]
                assert spread["n"] == 4 and spread["skipped"] == []
                assert spread["mean"] == pytest.approx(np.mean(values), abs=1e-12)
                assert spread["sd"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
        for name, gap in pooled.get("gaps", {}).items():
            if gap["status"] != "ok":
                continue
            values = [grouping(r, attribute)["gaps"][name]["value"] for r in per_fold]
            assert gap["folds"]["mean"] == pytest.approx(np.mean(values), abs=1e-12), name
            assert gap["folds"]["sd"] == pytest.approx(np.std(values, ddof=1), abs=1e-12), name
    assert report["summary"]["overall"]["auc"]["folds"]["n"] == 4


def test_a_fold_too_small_for_a_group_is_skipped_and_named() -> None:
    p = _pooled(3000, 3, 5)
    folds = p.folds.copy()
    vi_positive = np.flatnonzero((p.groups["skin_type"] == "VI") & (p.y_true == 1))
    folds[vi_positive[:-3]] = "s0/f0"  # fold f1 and f2 keep at most 3 positives of type VI between them
    folds[vi_positive[-3:]] = "s0/f1"
    report = build_report(dataclasses.replace(p, folds=folds), attributes=["skin_type"], n_boot=0, min_count=10)
    skin = grouping(report, "skin_type")
    vi = next(g for g in skin["groups"] if g["group"] == "VI")
    tpr = vi["metrics"]["tpr"]["folds"]
    assert tpr["n"] == 1 and tpr["sd"] is None
    assert tpr["skipped"] == [
        {"fold": "s0/f1", "status": "insufficient"},
        {"fold": "s0/f2", "status": "undefined"},
    ]
    pfd = skin["gaps"]["pfd"]
    assert "VI" in pfd["groups_used"]  # the pooled gap keeps type VI ...
    assert pfd["folds"]["n"] == 1  # ... so a fold without enough of it cannot stand in for the gap
    assert [s["fold"] for s in pfd["folds"]["skipped"]] == ["s0/f1", "s0/f2"]


def test_fold_labels_must_cover_every_sample() -> None:
    p = _pooled(200, 2, 1)
    folds = p.folds.copy()
    folds[0] = None
    with pytest.raises(ValueError, match="folds must label every sample"):
        build_report(dataclasses.replace(p, folds=folds), attributes=["sex"], n_boot=0)


def test_the_html_report_shows_the_spread_beside_the_pooled_value() -> None:
    report = build_report(_pooled(3000, 3, 2), attributes=["sex"], intersections=False, n_boot=20)
    spread = grouping(report, "overall")["groups"][0]["metrics"]["auc"]["folds"]
    page = render_html(report)
    assert f"{spread['mean']:.3f} ± {spread['sd']:.3f} across 3 folds" in page
