"""Splits of multi-class (class × group) and multi-label (iterative stratification) cohorts, by patient."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from app.cohorts.splits import NO_FINDING, fold_split, kfold, random_split, stratum_patients

FRACTIONS = (0.7, 0.15, 0.15)
SPLITS = ("train", "val", "test")


def no_patient_in_two_splits(patients: list[str], splits: list[str]) -> bool:
    seen: dict[str, set[str]] = defaultdict(set)
    for patient, split in zip(patients, splits, strict=True):
        seen[patient].add(split)
    return all(len(s) == 1 for s in seen.values())


def multiclass_cohort(seed: int = 0) -> tuple[list[int], list[tuple[str]], list[str]]:
    """Five classes of very different sizes (smallest: 6 patients), two groups, two images per patient."""
    rng = np.random.default_rng(seed)
    labels, groups, patients = [], [], []
    for k, n_patients in enumerate([80, 40, 20, 10, 6]):
        for p in range(n_patients):
            group = ("a",) if rng.random() < 0.5 else ("b",)
            for _ in range(2):
                labels.append(k)
                groups.append(group)
                patients.append(f"c{k}p{p}")
    return labels, groups, patients


def test_multiclass_every_class_lands_in_every_split_by_patient() -> None:
    labels, groups, patients = multiclass_cohort()
    splits = random_split(labels, groups, patients, FRACTIONS, seed=1)
    assert no_patient_in_two_splits(patients, splits)
    cells = Counter(zip(labels, splits, strict=True))
    assert all(cells[(k, s)] > 0 for k in range(5) for s in SPLITS), cells
    for k, total in Counter(labels).items():
        assert abs(cells[(k, "train")] / total - 0.7) < 0.2, (k, cells)
    assert splits == random_split(labels, groups, patients, FRACTIONS, seed=1), "deterministic by seed"


def multilabel_cohort(seed: int = 0) -> tuple[list[tuple[int, ...]], list[tuple[str]], list[str]]:
    """Four findings of prevalence 40 %, 20 %, 8 % and 3 % (some unknown), 300 patients of 1-3 images."""
    rng = np.random.default_rng(seed)
    prevalence = np.array([0.4, 0.2, 0.08, 0.03])
    labels, groups, patients = [], [], []
    for p in range(300):
        group = ("f",) if p % 3 else ("m",)
        for _ in range(int(rng.integers(1, 4))):
            vector = (rng.random(4) < prevalence).astype(int)
            vector[rng.random(4) < 0.05] = -1
            labels.append(tuple(int(v) for v in vector))
            groups.append(group)
            patients.append(f"p{p}")
    return labels, groups, patients


def test_multilabel_iterative_stratification_keeps_each_findings_prevalence() -> None:
    labels, groups, patients = multilabel_cohort()
    splits = random_split(labels, groups, patients, FRACTIONS, seed=4)
    assert no_patient_in_two_splits(patients, splits)
    sizes = Counter(splits)
    for split, fraction in zip(SPLITS, FRACTIONS, strict=True):
        assert abs(sizes[split] / len(labels) - fraction) < 0.03, sizes
    for f in range(4):
        positives = Counter(s for y, s in zip(labels, splits, strict=True) if y[f] == 1)
        total = sum(positives.values())
        for split, fraction in zip(SPLITS, FRACTIONS, strict=True):
            assert positives[split] > 0, (f, positives)  # even the 3 % finding reaches every split
            assert abs(positives[split] / total - fraction) < 0.08, (f, positives)
    for group in ("f", "m"):  # and within each group
        rows = [s for y, g, s in zip(labels, groups, splits, strict=True) if g == (group,) and y[0] == 1]
        assert abs(rows.count("train") / len(rows) - 0.7) < 0.1
    assert splits == random_split(labels, groups, patients, FRACTIONS, seed=4)
    assert splits != random_split(labels, groups, patients, FRACTIONS, seed=5)


def test_multilabel_folds_and_their_strata() -> None:
    labels, groups, patients = multilabel_cohort(1)
    folds = kfold(labels, groups, patients, 5, seed=2)
    assert no_patient_in_two_splits(patients, [str(f) for f in folds])
    rare = Counter(f for y, f in zip(labels, folds, strict=True) if y[3] == 1)
    assert set(rare) == set(range(5)), rare
    split = fold_split(labels, groups, patients, folds=5, fold=2, seed=2, val_fraction=0.2)
    assert {i for i, s in enumerate(split) if s == "test"} == {i for i, f in enumerate(folds) if f == 2}
    assert no_patient_in_two_splits(patients, split)
    counts = stratum_patients(labels, groups, patients)
    by_patient = defaultdict(set)
    for y, p in zip(labels, patients, strict=True):
        by_patient[p].update(f for f, v in enumerate(y) if v == 1)
    group_of = dict(zip(patients, groups, strict=True))
    assert counts[(3, ("m",))] == sum(1 for p, found in by_patient.items() if 3 in found and group_of[p] == ("m",))
    assert counts[(NO_FINDING, ("f",))] == sum(
        1 for p, found in by_patient.items() if not found and group_of[p] == ("f",)
    )


def test_binary_and_multiclass_labels_share_one_algorithm() -> None:
    labels = [0, 1] * 30
    groups = [("a",), ("b",), ("c",)] * 20
    patients = [f"p{i // 2}" for i in range(60)]
    assert random_split(labels, groups, patients, FRACTIONS, seed=0) == random_split(
        np.asarray(labels).tolist(), groups, patients, FRACTIONS, seed=0
    )
