"""Seeded train/val/test split, grouped by patient and stratified by label × sensitive group.

Why grouped: images of one patient are correlated; a patient in both train and test inflates every
metric. Why stratified: subgroup metrics need positives and negatives of each group in each split.

Algorithm (deterministic for a given manifest and seed):

1. Items sharing a patient id form a group; an item without one is its own group.
2. A group's stratum is (1 if any of its items is positive else 0, the stratum key of its first item).
3. Within each stratum (in order of first appearance) the groups are shuffled with the seeded
   generator and dealt one by one to the split whose item count is furthest below its target, in
   relative terms (``1 − count / target``; ties go to the larger fraction). A stratum with at least as
   many groups as non-empty splits therefore gives every split at least one group — each split gets
   positives of each group whenever there are enough positive patients — and large strata come out
   at the requested fractions.

K-fold assignment (``kfold``) deals the same patient groups, stratum by stratum, to K equal folds the
same way, so every fold is patient-disjoint from the others and holds its share of every label × group
stratum. ``fold_split`` turns fold ``k`` into a train/val/test split: test = fold ``k``, and a validation
split carved from the other folds with ``random_split`` (grouped and stratified likewise), never from
the held-out fold.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from app.cohorts.config import SPLITS


def _patient_groups(
    labels: Sequence[int], strata: Sequence[Hashable], patients: Sequence[str | None]
) -> dict[tuple[int, Hashable], list[list[int]]]:
    """Items grouped by patient (an item without one is its own group), the groups by stratum."""
    groups: dict[object, list[int]] = {}
    for i, patient in enumerate(patients):
        groups.setdefault(("patient", patient) if patient is not None else ("item", i), []).append(i)
    by_stratum: dict[tuple[int, Hashable], list[list[int]]] = {}
    for members in groups.values():
        key = (max(labels[i] for i in members), strata[members[0]])
        by_stratum.setdefault(key, []).append(members)
    return by_stratum


def stratum_patients(
    labels: Sequence[int], strata: Sequence[Hashable], patients: Sequence[str | None]
) -> dict[tuple[int, Hashable], int]:
    """How many patient groups each (label, stratum) holds: K folds need at least K in each."""
    return {key: len(members) for key, members in _patient_groups(labels, strata, patients).items()}


def _assign(
    labels: Sequence[int],
    strata: Sequence[Hashable],
    patients: Sequence[str | None],
    fractions: Sequence[float],
    seed: int,
) -> list[int]:
    """The index of the part (of ``fractions``) each item is dealt to."""
    rng = np.random.default_rng(seed)
    out = [-1] * len(labels)
    for stratum_groups in _patient_groups(labels, strata, patients).values():
        order = [stratum_groups[g] for g in rng.permutation(len(stratum_groups))]
        for members, part in zip(order, _deal([len(g) for g in order], fractions), strict=True):
            for i in members:
                out[i] = part
    return out


def random_split(
    labels: Sequence[int],
    strata: Sequence[Hashable],
    patients: Sequence[str | None],
    fractions: Sequence[float],
    seed: int,
) -> list[str]:
    """The split name of each item (see the module docstring)."""
    return [SPLITS[part] for part in _assign(labels, strata, patients, fractions, seed)]


def kfold(
    labels: Sequence[int], strata: Sequence[Hashable], patients: Sequence[str | None], folds: int, seed: int
) -> list[int]:
    """The fold (0 … ``folds`` − 1) of each item: patient-grouped, stratified, deterministic by seed."""
    if folds < 2:
        raise ValueError("K-fold needs at least 2 folds")
    return _assign(labels, strata, patients, [1 / folds] * folds, seed)


def fold_split(
    labels: Sequence[int],
    strata: Sequence[Hashable],
    patients: Sequence[str | None],
    *,
    folds: int,
    fold: int,
    seed: int,
    val_fraction: float,
) -> list[str]:
    """The split name of each item when fold ``fold`` of ``kfold(…, folds, seed)`` is held out: test is
    that fold; val is ``val_fraction`` of the other folds' patients (per stratum), the rest train."""
    assigned = kfold(labels, strata, patients, folds, seed)
    rest = [i for i, f in enumerate(assigned) if f != fold]
    carved = random_split(
        [labels[i] for i in rest],
        [strata[i] for i in rest],
        [patients[i] for i in rest],
        (1 - val_fraction, val_fraction, 0.0),
        seed=seed * folds + fold,  # each held-out fold gets its own validation patients
    )
    out = ["test"] * len(labels)
    for i, split in zip(rest, carved, strict=True):
        out[i] = split
    return out


def _deal(sizes: list[int], fractions: Sequence[float]) -> list[int]:
    """Deal groups of the given sizes, in order, to the part furthest below its target."""
    total = sum(sizes)
    active = [s for s in range(len(fractions)) if fractions[s] > 0]
    counts = [0] * len(fractions)
    dealt = []
    for size in sizes:
        part = max(active, key=lambda s: (1 - counts[s] / (fractions[s] * total), fractions[s], -s))
        counts[part] += size
        dealt.append(part)
    return dealt
