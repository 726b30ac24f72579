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
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from app.cohorts.config import SPLITS


def random_split(
    labels: Sequence[int],
    strata: Sequence[Hashable],
    patients: Sequence[str | None],
    fractions: Sequence[float],
    seed: int,
) -> list[str]:
    """The split name of each item (see the module docstring)."""
    groups: dict[object, list[int]] = {}
    for i, patient in enumerate(patients):
        groups.setdefault(("patient", patient) if patient is not None else ("item", i), []).append(i)

    by_stratum: dict[Hashable, list[list[int]]] = {}
    for members in groups.values():
        key = (max(labels[i] for i in members), strata[members[0]])
        by_stratum.setdefault(key, []).append(members)

    rng = np.random.default_rng(seed)
    out = [""] * len(labels)
    for stratum_groups in by_stratum.values():
        order = [stratum_groups[g] for g in rng.permutation(len(stratum_groups))]
        for members, split in zip(order, _deal([len(g) for g in order], fractions), strict=True):
            for i in members:
                out[i] = split
    return out


def _deal(sizes: list[int], fractions: Sequence[float]) -> list[str]:
    """Deal groups of the given sizes, in order, to the split furthest below its target."""
    total = sum(sizes)
    active = [s for s in range(len(SPLITS)) if fractions[s] > 0]
    counts = [0] * len(SPLITS)
    dealt = []
    for size in sizes:
        split = max(active, key=lambda s: (1 - counts[s] / (fractions[s] * total), fractions[s], -s))
        counts[split] += size
        dealt.append(SPLITS[split])
    return dealt
