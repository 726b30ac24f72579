"""K-fold splits: patient-disjoint, stratified, every item held out once per seed, validation carved
from the training folds only; a fold plan replaces the stored split where training reads it."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest
from split_cohort import split_cohort
from training_helpers import MakeCohort

from app.cohorts.splits import fold_split, kfold, stratum_patients
from app.core.errors import InputError
from app.training.config import FoldPlan, TrainingConfig
from app.training.folds import apply_fold_plan, fold_plan_problems
from app.training.validation import validate_training_config


def test_folds_are_patient_disjoint_and_stratified() -> None:
    labels, groups, patients = split_cohort()
    folds = kfold(labels, groups, patients, 5, seed=2)
    seen: dict[str, set[int]] = defaultdict(set)
    for patient, fold in zip(patients, folds, strict=True):
        if patient is not None:
            seen[patient].add(fold)
    assert all(len(f) == 1 for f in seen.values()), "a patient's images must share one fold"
    assert sorted(set(folds)) == [0, 1, 2, 3, 4]
    # strata are per patient (positive if any image is, the group of the first image): each fold gets
    # its share of every stratum's images, give or take one patient's images
    members: dict[object, list[int]] = defaultdict(list)
    for i, patient in enumerate(patients):
        members[patient if patient is not None else i].append(i)
    strata: dict[tuple[int, tuple[str]], Counter[int]] = defaultdict(Counter)
    largest = max(len(m) for m in members.values())
    for items in members.values():
        strata[(max(labels[i] for i in items), groups[items[0]])][folds[items[0]]] += len(items)
    assert len(strata) == 6
    for key, per_fold in strata.items():
        total = sum(per_fold.values())
        assert all(abs(per_fold[f] - total / 5) <= largest for f in range(5)), (key, per_fold)


def test_each_item_is_held_out_exactly_once_and_validation_never_comes_from_the_held_out_fold() -> None:
    labels, groups, patients = split_cohort(n=1200)
    assigned = kfold(labels, groups, patients, 4, seed=0)
    held_out = np.zeros(len(labels), dtype=int)
    for fold in range(4):
        split = fold_split(labels, groups, patients, folds=4, fold=fold, seed=0, val_fraction=0.2)
        tested = np.array([s == "test" for s in split])
        assert np.array_equal(tested, np.array(assigned) == fold), "test is exactly the held-out fold"
        val = [i for i, s in enumerate(split) if s == "val"]
        assert val and all(assigned[i] != fold for i in val)
        share = len(val) / (len(labels) - tested.sum())
        assert 0.15 < share < 0.25, share
        by_patient: dict[str, set[str]] = defaultdict(set)
        for patient, s in zip(patients, split, strict=True):
            if patient is not None:
                by_patient[patient].add(s)
        assert all(len(s) == 1 for s in by_patient.values()), "val is carved by patient too"
        held_out += tested
    assert (held_out == 1).all()


def test_folds_are_deterministic_and_reshuffled_by_seed() -> None:
    labels, groups, patients = split_cohort(n=600)
    first = kfold(labels, groups, patients, 3, seed=1)
    assert kfold(labels, groups, patients, 3, seed=1) == first
    assert kfold(labels, groups, patients, 3, seed=2) != first
    plan = FoldPlan(folds=3, fold=0, seed=4, repeat_splits=False)
    assert plan.split_seed == 0, "without repeat_splits every seed uses the seed-0 folds"
    assert FoldPlan(folds=3, fold=0, seed=4, repeat_splits=True).split_seed == 4
    with pytest.raises(ValueError, match="fold 3 does not exist"):
        FoldPlan(folds=3, fold=3)


def test_stratum_patients_counts_patients_not_images() -> None:
    counts = stratum_patients([1, 1, 0, 0], [("a",), ("a",), ("a",), ("b",)], ["p1", "p1", "p2", None])
    assert counts == {(1, ("a",)): 1, (0, ("a",)): 1, (0, ("b",)): 1}


def test_a_fold_plan_replaces_the_stored_split_and_too_many_folds_name_the_smallest_stratum(
    make_cohort: MakeCohort,
) -> None:
    arrays = make_cohort(n=60)
    plan = FoldPlan(folds=3, fold=1, stratify_by=["sex"])
    replaced = apply_fold_plan(arrays, plan)
    assert set(replaced.split) == {"train", "val", "test"}
    assert not np.array_equal(replaced.split, arrays.split)
    config = TrainingConfig(sensitive_attributes=["sex"], backbone="small", batch_size=8, fold_plan=plan)
    assert validate_training_config(config, arrays).fold_plan == plan

    smallest = min(
        n
        for (_, (sex,)), n in stratum_patients(
            arrays.labels.tolist(), [(v,) for v in arrays.attributes["sex"]], arrays.patient_ids.tolist()
        ).items()
        if sex is not None
    )
    too_many = FoldPlan(folds=smallest + 1, fold=0, stratify_by=["sex"])
    problems = fold_plan_problems(arrays, too_many)
    assert problems[0]["field"] == "folds"
    assert "the smallest, label=1, sex=" in problems[0]["message"] and f"has {smallest}" in problems[0]["message"]
    assert fold_plan_problems(arrays, too_many.model_copy(update={"folds": smallest, "fold": 0})) == []
    with pytest.raises(InputError, match="fold plan"):
        validate_training_config(config.model_copy(update={"fold_plan": too_many}), arrays)
    unknown = fold_plan_problems(arrays, FoldPlan(folds=2, fold=0, stratify_by=["race"]))
    assert unknown[0]["field"] == "fold_plan.stratify_by" and "race" in unknown[0]["message"]
