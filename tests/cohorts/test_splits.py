"""Random split: grouped by patient, stratified by label × group, deterministic by seed."""

from __future__ import annotations

from collections import Counter, defaultdict

from split_cohort import split_cohort

from app.cohorts.splits import random_split

FRACTIONS = (0.7, 0.15, 0.15)


def test_no_patient_in_two_splits() -> None:
    labels, groups, patients = split_cohort()
    splits = random_split(labels, groups, patients, FRACTIONS, seed=3)
    seen: dict[str, set[str]] = defaultdict(set)
    for patient, split in zip(patients, splits, strict=True):
        if patient is not None:
            seen[patient].add(split)
    assert all(len(s) == 1 for s in seen.values())


def test_fractions_hold_within_each_label_and_group() -> None:
    labels, groups, patients = split_cohort()
    splits = random_split(labels, groups, patients, FRACTIONS, seed=3)
    cells = Counter(zip(labels, groups, splits, strict=True))
    for label in (0, 1):
        for group in ("a", "b", "c"):
            total = sum(cells[(label, (group,), s)] for s in ("train", "val", "test"))
            for split, fraction in zip(("train", "val", "test"), FRACTIONS, strict=True):
                assert abs(cells[(label, (group,), split)] / total - fraction) < 0.1, (label, group, split)


def test_each_split_gets_positives_of_a_small_group() -> None:
    labels = [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    groups = [("rare",)] * 3 + [("common",)] * 7
    splits = random_split(labels, groups, [None] * 10, FRACTIONS, seed=0)
    assert sorted(splits[:3]) == ["test", "train", "val"]


def test_deterministic_by_seed() -> None:
    labels, groups, patients = split_cohort()
    first = random_split(labels, groups, patients, FRACTIONS, seed=5)
    assert random_split(labels, groups, patients, FRACTIONS, seed=5) == first
    assert random_split(labels, groups, patients, FRACTIONS, seed=6) != first


def test_zero_fraction_split_stays_empty() -> None:
    labels, groups, patients = split_cohort(300)
    splits = random_split(labels, groups, patients, (0.8, 0.0, 0.2), seed=0)
    assert set(splits) == {"train", "test"}
