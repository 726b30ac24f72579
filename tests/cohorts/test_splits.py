"""Random split: grouped by patient, stratified by label × group, deterministic by seed."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from app.cohorts.splits import random_split

FRACTIONS = (0.7, 0.15, 0.15)


def cohort(n: int = 3000, seed: int = 0) -> tuple[list[int], list[tuple[str]], list[str | None]]:
    rng = np.random.default_rng(seed)
    patients = [f"p{i}" if i % 10 else None for i in rng.integers(0, n // 3, n)]
    groups = [(str(g),) for g in rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1])]
    labels = [int(v) for v in rng.random(n) < 0.2]
    return labels, groups, patients


def test_no_patient_in_two_splits() -> None:
    labels, groups, patients = cohort()
    splits = random_split(labels, groups, patients, FRACTIONS, seed=3)
    seen: dict[str, set[str]] = defaultdict(set)
    for patient, split in zip(patients, splits, strict=True):
        if patient is not None:
            seen[patient].add(split)
    assert all(len(s) == 1 for s in seen.values())


def test_fractions_hold_within_each_label_and_group() -> None:
    labels, groups, patients = cohort()
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
    labels, groups, patients = cohort()
    first = random_split(labels, groups, patients, FRACTIONS, seed=5)
    assert random_split(labels, groups, patients, FRACTIONS, seed=5) == first
    assert random_split(labels, groups, patients, FRACTIONS, seed=6) != first


def test_zero_fraction_split_stays_empty() -> None:
    labels, groups, patients = cohort(300)
    splits = random_split(labels, groups, patients, (0.8, 0.0, 0.2), seed=0)
    assert set(splits) == {"train", "test"}
