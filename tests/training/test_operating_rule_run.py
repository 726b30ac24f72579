"""A training run with the constrained threshold rule: chosen on validation, recorded in model.json
(old model.json files without the record still load), and a band no threshold meets fails the run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from training_helpers import small_config, write_cohort

from app.cohorts.cache import load_cohort_arrays
from app.core.errors import InputError
from app.modelpkg.folder import read_manifest
from app.modelpkg.manifest import parse_manifest
from app.training import TrainingResult, run_training

BAND = {"attribute": "age_group", "fpr_band": 0.1, "tpr_band": 0.25, "min_group_count": 5}


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cohort")
    write_cohort(folder, n=400)
    return folder


@pytest.fixture(scope="module")
def constrained(cohort_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainingResult:
    root = tmp_path_factory.mktemp("run")
    config = small_config(epochs=1, threshold_rule="constrained", threshold_constraint=BAND)
    return run_training(cohort_dir, config, root / "work", root / "models", "v1")


def test_the_constrained_choice_is_recorded_and_in_band_on_validation(constrained: TrainingResult) -> None:
    manifest = read_manifest(constrained.model_path)
    rule = manifest.operating_threshold_rule
    assert rule is not None and rule.rule == "constrained" and rule.chosen_on == "val"
    assert rule.constraint is not None and rule.constraint.model_dump(exclude_defaults=True) == BAND
    assert rule.constraint_met is True and rule.fallback is None
    point = rule.operating_point
    assert point is not None and point.grouped_by == ["age_group"]
    assert [g.group for g in point.groups] == ["<60", ">=60"]
    held = [g for g in point.groups if g.held]
    assert len(held) == 2 and all(g.n_pos >= 5 and g.n_neg >= 5 for g in held)
    fpr = [g.fpr for g in held if g.fpr is not None]
    tpr = [g.tpr for g in held if g.tpr is not None]
    assert max(fpr) - min(fpr) <= 0.1 + 1e-9 and max(tpr) - min(tpr) <= 0.25 + 1e-9
    assert point.thresholds_examined and 0 < (point.thresholds_in_band or 0) <= point.thresholds_examined
    assert manifest.operating_threshold == constrained.operating_threshold
    assert manifest.training is not None and manifest.training.config["threshold_constraint"] == {
        "attribute": "age_group",
        "fpr_band": 0.1,
        "tpr_band": 0.25,
        "max_fpr": None,
        "min_tpr": None,
        "min_group_count": 5,
        "on_infeasible": "fail",
    }


def test_the_recorded_rates_are_the_validation_rates_at_the_threshold(
    constrained: TrainingResult, cohort_dir: Path
) -> None:
    """Group counts are the validation split's, and (age_group has no missing values) the groups'
    rates add up to the overall validation TPR and FPR the run reports."""
    manifest = read_manifest(constrained.model_path)
    assert manifest.operating_threshold_rule is not None and manifest.training is not None
    point = manifest.operating_threshold_rule.operating_point
    assert point is not None
    arrays = load_cohort_arrays(cohort_dir)
    val = arrays.split == "val"
    for group in point.groups:
        labels = arrays.labels[val & (arrays.attributes["age_group"] == group.group)]
        assert (group.n_pos, group.n_neg) == (int((labels == 1).sum()), int((labels == 0).sum()))
    n_pos, n_neg = sum(g.n_pos for g in point.groups), sum(g.n_neg for g in point.groups)
    tp = sum((g.tpr or 0.0) * g.n_pos for g in point.groups)
    fp = sum((g.fpr or 0.0) * g.n_neg for g in point.groups)
    assert tp / n_pos == pytest.approx(manifest.training.validation.tpr)
    assert fp / n_neg == pytest.approx(manifest.training.validation.fpr)


def test_a_manifest_written_before_the_record_still_loads(constrained: TrainingResult) -> None:
    data = json.loads((constrained.model_path / "model.json").read_text())
    data["operating_threshold_rule"] = {
        "rule": "youden",
        "target_specificity": 0.9,  # older configs let this stand beside another rule
        "decision": "probability >= operating_threshold",
        "chosen_on": "val",
    }
    old = parse_manifest(json.dumps(data), "an older model.json")
    rule = old.operating_threshold_rule
    assert rule is not None and rule.rule == "youden" and rule.target_specificity == 0.9
    assert rule.target_sensitivity is None and rule.constraint is None and rule.operating_point is None


def test_a_band_no_threshold_meets_fails_the_run_and_publishes_nothing(cohort_dir: Path, tmp_path: Path) -> None:
    impossible = {"max_fpr": 0.01, "min_tpr": 0.99, "min_group_count": 5}
    config = small_config(epochs=1, threshold_rule="constrained", threshold_constraint=impossible)
    with pytest.raises(InputError) as raised:
        run_training(cohort_dir, config, tmp_path / "work", tmp_path / "models", "v1")
    [error] = raised.value.errors
    assert error["field"] == "threshold_constraint"
    assert "none of" in error["message"] and "FPR ≤ 0.01, TPR ≥ 0.99" in error["message"]
    assert not (tmp_path / "models" / "v1").exists()


def test_target_sensitivity_reaches_its_target_on_validation(cohort_dir: Path, tmp_path: Path) -> None:
    config = small_config(epochs=1, threshold_rule="target_sensitivity", target_sensitivity=0.8)
    result = run_training(cohort_dir, config, tmp_path / "work", tmp_path / "models", "v1")
    assert result.validation["tpr"] >= 0.8
    rule = result.manifest.operating_threshold_rule
    assert rule is not None and rule.rule == "target_sensitivity" and rule.target_sensitivity == 0.8
    assert rule.operating_point is not None and rule.operating_point.grouped_by == ["sex"]
    counts = np.array([[g.n_pos, g.n_neg] for g in rule.operating_point.groups])
    assert counts.sum() > 0 and all(g.held is None for g in rule.operating_point.groups)
