"""The engine reports the intersections it is asked for (a list of attribute lists), and the
evaluation layer always adds the one a model was trained on."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import TypeAdapter

from app.fairness.engine.inputs import PredictionSet
from app.fairness.engine.report import build_report
from app.fairness.evaluation import intersections_to_report
from app.fairness.report_html import render_html
from app.fairness.report_schema import FairnessReport


def predictions(n: int = 600) -> PredictionSet:
    rng = np.random.default_rng(3)

    def column(values: list[str]) -> np.ndarray:
        out = np.empty(n, dtype=object)
        out[:] = list(rng.choice(values, n))
        return out

    y = rng.integers(0, 2, n)
    return PredictionSet(
        y_true=y,
        exit_scores=np.clip(0.5 * y + rng.random(n) * 0.5, 0, 1)[:, None],
        groups={"sex": column(["female", "male"]), "age_group": column(["<60", ">=60"]), "race": column(["a", "b"])},
        threshold=0.5,
    )


def intersections_of(report: dict) -> list[str]:
    return [g["attribute"] for g in report["groupings"] if g["kind"] == "intersection"]


def test_a_list_of_intersections_is_reported_each_with_its_cells() -> None:
    attributes = ["sex", "age_group", "race"]
    report = build_report(
        predictions(), attributes=attributes, intersections=[["sex", "age_group"], ["race", "sex"]], n_boot=0
    )
    assert intersections_of(report) == ["sex×age_group", "race×sex"]
    assert report["config"]["intersections"] == [["sex", "age_group"], ["race", "sex"]]
    cells = next(g for g in report["groupings"] if g["attribute"] == "sex×age_group")["groups"]
    assert cells == [
        "sex=female, age_group=<60",
        "sex=female, age_group=>=60",
        "sex=male, age_group=<60",
        "sex=male, age_group=>=60",
    ]
    policy = report["evaluations"][-1]["groupings"]
    female_old = next(g for g in policy if g["attribute"] == "sex×age_group")["groups"][1]
    p = predictions()
    mask = (p.groups["sex"] == "female") & (p.groups["age_group"] == ">=60")
    assert (
        female_old["n"] == int(mask.sum()) and "pfd" in next(g for g in policy if g["attribute"] == "race×sex")["gaps"]
    )

    # True keeps today's behaviour (the one full intersection); the same set in another order is dropped
    assert intersections_of(build_report(predictions(), attributes=attributes, n_boot=0)) == ["sex×age_group×race"]
    twice = build_report(
        predictions(), attributes=attributes, intersections=[["sex", "race"], ["race", "sex"]], n_boot=0
    )
    assert intersections_of(twice) == ["sex×race"]


@pytest.mark.parametrize("bad", [[["sex", "site"]], [["sex"]], [["sex", "sex"]]])
def test_intersections_naming_other_attributes_are_refused(bad: list[list[str]]) -> None:
    with pytest.raises(ValueError, match="intersection"):
        build_report(predictions(), attributes=["sex", "age_group"], intersections=bad, n_boot=0)


def test_the_trained_intersection_is_always_reported() -> None:
    cohort = ["age_group", "sex", "race"]
    trained = ["sex", "age_group"]
    assert intersections_to_report(cohort, None, trained) == [trained, cohort]
    assert intersections_to_report(cohort, [], trained) == [trained]
    assert intersections_to_report(cohort, [["race", "sex"]], trained) == [trained, ["race", "sex"]]
    assert intersections_to_report(cohort, None, ["sex"]) == [cohort], "one training attribute: no intersection"


def test_reports_stored_before_intersection_lists_still_validate_and_render() -> None:
    report = build_report(predictions(), attributes=["sex", "race"], n_boot=0)
    report["config"]["intersections"] = True  # as stored by earlier versions
    TypeAdapter(FairnessReport).validate_python(report)
    assert "sex×race" in render_html(report, title="old report")
