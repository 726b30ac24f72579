"""Seeded train/val/test split, grouped by patient and stratified by label × sensitive group.

Labels: binary 0/1 or a multiclass class index (one int per item: the same algorithm, a class is a
label value), or a multi-label finding vector per item (``1``/``0``/``-1``), split by iterative
stratification (below). Every function here takes either; a vector label selects the latter.

Why grouped: images of one patient are correlated; a patient in both train and test inflates every
metric. Why stratified: subgroup metrics need positives and negatives of each group in each split.

Algorithm (deterministic for a given manifest and seed):

1. Items sharing a patient id form a group; an item without one is its own group.
2. A group's stratum is (its items' largest label — binary: 1 if any is positive; multiclass: the
   largest class index — and the stratum key of its first item).
3. Within each stratum (in order of first appearance) the groups are shuffled with the seeded
   generator and dealt one by one to the split whose item count is furthest below its target, in
   relative terms (``1 − count / target``; ties go to the larger fraction). A stratum with at least as
   many groups as non-empty splits therefore gives every split at least one group — each split gets
   positives of each group whenever there are enough positive patients — and large strata come out
   at the requested fractions.

Multi-label (iterative stratification, Sechidis, Tsoumakas & Vlahavas 2011, by patient): a patient
group carries the labels (finding, stratum) for each finding any of its items has positive, or
(``NO_FINDING``, stratum) when none is; each label's items are wanted in each split at the requested
fractions. The groups are shuffled with the seeded generator; then, repeatedly, the label with the
fewest items still unassigned is taken and each of its unassigned groups, in shuffled order, goes to
the split that wants that label most (ties: the split that wants the most items overall, then the
larger fraction), and every split's wants are reduced by the group's items. Rare findings are thus
placed first, while every split can still take them.

K-fold assignment (``kfold``) deals the same patient groups, stratum by stratum, to K equal folds the
same way, so every fold is patient-disjoint from the others and holds its share of every label × group
stratum. ``fold_split`` turns fold ``k`` into a train/val/test split: test = fold ``k``, and a validation
split carved from the other folds with ``random_split`` (grouped and stratified likewise), never from
the held-out fold.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from typing import cast

import numpy as np

from app.cohorts.config import SPLITS

#: One label per item: an int (binary, class index) or a finding vector (multi-label).
Labels = Sequence[int] | Sequence[Sequence[int]]
NO_FINDING = -1  # the multi-label "finding" of a patient group with no positive finding


def _is_multilabel(labels: Labels) -> bool:
    return len(labels) > 0 and not isinstance(labels[0], int | np.integer)


def _groups(patients: Sequence[str | None]) -> list[list[int]]:
    """Items grouped by patient, in order of first appearance (an item without one is its own group)."""
    groups: dict[object, list[int]] = {}
    for i, patient in enumerate(patients):
        groups.setdefault(("patient", patient) if patient is not None else ("item", i), []).append(i)
    return list(groups.values())


def _patient_groups(
    labels: Sequence[int], strata: Sequence[Hashable], patients: Sequence[str | None]
) -> dict[tuple[int, Hashable], list[list[int]]]:
    """Items grouped by patient, the groups by stratum (their largest label × the first item's stratum)."""
    by_stratum: dict[tuple[int, Hashable], list[list[int]]] = {}
    for members in _groups(patients):
        key = (max(labels[i] for i in members), strata[members[0]])
        by_stratum.setdefault(key, []).append(members)
    return by_stratum


def _finding_labels(
    labels: Sequence[Sequence[int]], strata: Sequence[Hashable], members: list[int]
) -> Counter[tuple[int, Hashable]]:
    """A patient group's multi-label labels: items positive per (finding, stratum), or (NO_FINDING, stratum)."""
    stratum = strata[members[0]]
    found: Counter[tuple[int, Hashable]] = Counter(
        (f, stratum) for i in members for f, y in enumerate(labels[i]) if y == 1
    )
    return found or Counter({(NO_FINDING, stratum): len(members)})


def stratum_patients(
    labels: Labels, strata: Sequence[Hashable], patients: Sequence[str | None]
) -> dict[tuple[int, Hashable], int]:
    """How many patient groups each (label, stratum) holds: K folds need at least K in each. Multi-label:
    (finding index, stratum) counts the groups with that finding positive; ``NO_FINDING`` those with none."""
    if _is_multilabel(labels):
        vectors = cast(Sequence[Sequence[int]], labels)
        counts: Counter[tuple[int, Hashable]] = Counter()
        for members in _groups(patients):
            counts.update(_finding_labels(vectors, strata, members).keys())
        return dict(counts)
    singles = cast(Sequence[int], labels)
    return {key: len(members) for key, members in _patient_groups(singles, strata, patients).items()}


def _assign(
    labels: Labels,
    strata: Sequence[Hashable],
    patients: Sequence[str | None],
    fractions: Sequence[float],
    seed: int,
) -> list[int]:
    """The index of the part (of ``fractions``) each item is dealt to."""
    if _is_multilabel(labels):
        return _assign_iteratively(cast(Sequence[Sequence[int]], labels), strata, patients, fractions, seed)
    labels = cast(Sequence[int], labels)
    rng = np.random.default_rng(seed)
    out = [-1] * len(labels)
    for stratum_groups in _patient_groups(labels, strata, patients).values():
        order = [stratum_groups[g] for g in rng.permutation(len(stratum_groups))]
        for members, part in zip(order, _deal([len(g) for g in order], fractions), strict=True):
            for i in members:
                out[i] = part
    return out


def _assign_iteratively(
    labels: Sequence[Sequence[int]],
    strata: Sequence[Hashable],
    patients: Sequence[str | None],
    fractions: Sequence[float],
    seed: int,
) -> list[int]:
    """Iterative stratification of patient groups over (finding, stratum) labels (module docstring)."""
    rng = np.random.default_rng(seed)
    groups = _groups(patients)
    groups = [groups[g] for g in rng.permutation(len(groups))]
    group_labels = [_finding_labels(labels, strata, members) for members in groups]
    active = [s for s in range(len(fractions)) if fractions[s] > 0]
    left: Counter[tuple[int, Hashable]] = Counter()
    holders: dict[tuple[int, Hashable], list[int]] = {}
    for g, found in enumerate(group_labels):
        left.update(found)
        for key in found:
            holders.setdefault(key, []).append(g)
    want = {key: [f * n for f in fractions] for key, n in left.items()}
    want_items = [f * len(labels) for f in fractions]
    first = {key: n for n, key in enumerate(holders)}  # deterministic tie-break between equally rare labels
    out = [-1] * len(labels)
    while left:
        key = min(left, key=lambda k: (left[k], first[k]))
        for g in holders[key]:
            members = groups[g]
            if out[members[0]] != -1:
                continue
            part = max(active, key=lambda s: (want[key][s], want_items[s], fractions[s], -s))
            for i in members:
                out[i] = part
            want_items[part] -= len(members)
            for label, n in group_labels[g].items():
                want[label][part] -= n
                left[label] -= n
                if left[label] == 0:
                    del left[label]
    return out


def random_split(
    labels: Labels,
    strata: Sequence[Hashable],
    patients: Sequence[str | None],
    fractions: Sequence[float],
    seed: int,
) -> list[str]:
    """The split name of each item (see the module docstring)."""
    return [SPLITS[part] for part in _assign(labels, strata, patients, fractions, seed)]


def kfold(
    labels: Labels, strata: Sequence[Hashable], patients: Sequence[str | None], folds: int, seed: int
) -> list[int]:
    """The fold (0 … ``folds`` − 1) of each item: patient-grouped, stratified, deterministic by seed."""
    if folds < 2:
        raise ValueError("K-fold needs at least 2 folds")
    return _assign(labels, strata, patients, [1 / folds] * folds, seed)


def fold_split(
    labels: Labels,
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
        cast(Labels, [labels[i] for i in rest]),
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
