"""Label-encoded groupings of a population, and the strata its bootstrap resamples within.

A *grouping* splits the samples into groups: ``overall`` (one group, everyone), one grouping per
sensitive attribute, and each requested intersection of two or more of them (only combinations that
occur; ``resolve_intersections``: ``True`` is the one intersection of every attribute).
Codes are small integers so that every per-group statistic is one vectorised pass (no Python loop
over groups). A missing value (``None``, or a float NaN) joins no group of that attribute (code -1)
and no intersection cell, but the sample stays in ``overall`` and among "all negatives" of PF.

The *strata* are the finest cells (every attribute, with "missing" as a level of its own) crossed with
the label. Resampling within them keeps n_pos and n_neg of every group of every grouping fixed, so a
resample never loses a class in a small group and every grouping is stratified by group × label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np

MISSING = -1
INTERSECTION_SEP = "×"

#: ``True``: the intersection of every attribute (when two or more); ``False``: none; or a list of
#: attribute lists, each an intersection to report.
Intersections: TypeAlias = bool | Sequence[Sequence[str]]


def resolve_intersections(attributes: Sequence[str], intersections: Intersections) -> list[list[str]]:
    """The intersections to report, each a list of two or more distinct ``attributes``; one naming the
    same attributes as an earlier one (in any order) is dropped."""
    if isinstance(intersections, bool):
        return [list(attributes)] if intersections and len(attributes) >= 2 else []
    resolved: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    for names in intersections:
        names = list(names)
        if len(names) < 2 or len(set(names)) != len(names):
            raise ValueError(f"an intersection names two or more distinct attributes, not {names}")
        unknown = [a for a in names if a not in attributes]
        if unknown:
            raise ValueError(f"intersection {names} names {unknown}, not among the attributes {list(attributes)}")
        if frozenset(names) not in seen:
            seen.add(frozenset(names))
            resolved.append(names)
    return resolved


@dataclass(frozen=True)
class Grouping:
    """One way of splitting the population; ``codes[i] == -1`` means sample i is in no group."""

    attribute: str  # "overall", an attribute name, or "a×b" for an intersection
    kind: str  # "overall" | "attribute" | "intersection"
    labels: tuple[str, ...]
    levels: tuple[dict[str, str], ...]  # attribute -> value of each group ({} for overall)
    codes: np.ndarray  # (n,) int64
    n_missing: int

    @property
    def n_groups(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Design:
    """Groupings (``overall`` first) and strata, all in the engine's internal sample order.

    ``order`` maps internal position -> caller's index: the engine sorts samples by stratum once so
    that each stratum is a contiguous block (cheap to resample) and permutes every input by ``order``.
    """

    groupings: tuple[Grouping, ...]
    cell: np.ndarray  # (n,) finest cell code, missing values as levels
    n_cells: int
    strata_bounds: np.ndarray  # (n_strata + 1,) block boundaries of the strata in internal order
    order: np.ndarray  # (n,) internal position -> caller's sample index

    def cell_to_group(self, grouping: Grouping) -> np.ndarray:
        """(n_cells,) group code of each finest cell in ``grouping`` (-1: the cell is in no group)."""
        out = np.full(self.n_cells, MISSING, dtype=np.int64)
        out[self.cell] = grouping.codes
        return out


def encode_attribute(values: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Codes (sorted labels, -1 for missing) and labels of one attribute column."""
    values = np.asarray(values, dtype=object)
    missing = np.equal(values, np.array(None, dtype=object)) | (values != values)  # None, or NaN
    codes = np.full(len(values), MISSING, dtype=np.int64)
    if missing.all():
        return codes, ()
    labels, inverse = np.unique(values[~missing].astype(str), return_inverse=True)
    codes[~missing] = inverse
    return codes, tuple(str(v) for v in labels)


def combine_codes(columns: Sequence[np.ndarray], sizes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Number the observed combinations of non-negative code columns, in lexicographic order.

    Returns the combined code per sample and, per combination, the code of each column
    (``(n_combinations, n_columns)``). Combines pairwise with re-numbering so it cannot overflow.
    """
    combined = np.zeros(len(columns[0]), dtype=np.int64)
    table = np.zeros((1, 0), dtype=np.int64)
    for column, size in zip(columns, sizes, strict=True):
        key = combined * size + column
        uniq, combined = np.unique(key, return_inverse=True)
        table = np.column_stack([table[uniq // size], uniq % size])
    return combined.astype(np.int64), table


def _intersection(
    attributes: Sequence[str], encoded: Sequence[tuple[np.ndarray, tuple[str, ...]]]
) -> tuple[np.ndarray, tuple[dict[str, str], ...], tuple[str, ...], int]:
    """Codes, levels, labels (``a=v, b=w``) and the missing count of the observed combinations."""
    observed = np.all([codes >= 0 for codes, _ in encoded], axis=0)
    codes = np.full(len(observed), MISSING, dtype=np.int64)
    combos = np.zeros((0, len(attributes)), dtype=np.int64)
    if observed.any():
        codes[observed], combos = combine_codes(
            [c[observed] for c, _ in encoded], [max(len(lab), 1) for _, lab in encoded]
        )
    levels = tuple(
        {a: encoded[j][1][k] for j, (a, k) in enumerate(zip(attributes, row, strict=True))} for row in combos
    )
    labels = tuple(", ".join(f"{a}={v}" for a, v in lv.items()) for lv in levels)
    return codes, levels, labels, int((~observed).sum())


def encode_cells(groups: Mapping[str, np.ndarray], attributes: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Codes and labels of one attribute's groups, or of several attributes' intersection cells
    (labelled ``a=v, b=w`` as the report labels them); -1: in no group."""
    encoded = [encode_attribute(groups[a]) for a in attributes]
    if len(encoded) == 1:
        return encoded[0]
    codes, _, labels, _ = _intersection(attributes, encoded)
    return codes, labels


def build_design(
    y_true: np.ndarray,
    groups: Mapping[str, np.ndarray],
    attributes: Sequence[str],
    *,
    intersections: Intersections = True,
    sort_by: np.ndarray | None = None,
    n_labels: int = 2,
) -> Design:
    """Encode ``attributes``, the requested intersections of them, and the strata.

    ``sort_by`` (e.g. the served scores) orders samples within each stratum: a column whose scores
    are in that order needs no reordering of the resample weights (see ``kernel.plan_column``).
    ``n_labels``: the labels ``y_true`` takes (2, or a multi-class task's K), so strata are cell × label.
    """
    unknown = [a for a in attributes if a not in groups]
    if unknown:
        raise ValueError(f"unknown attribute(s): {unknown}; available: {sorted(groups)}")
    if len(set(attributes)) != len(attributes):
        raise ValueError("attributes must be distinct")
    n = len(y_true)
    encoded = [encode_attribute(groups[a]) for a in attributes]

    groupings: list[Grouping] = [Grouping("overall", "overall", ("all",), ({},), np.zeros(n, dtype=np.int64), 0)]
    for name, (codes, labels) in zip(attributes, encoded, strict=True):
        levels = tuple({name: label} for label in labels)
        groupings.append(Grouping(name, "attribute", labels, levels, codes, int((codes < 0).sum())))

    by_name = dict(zip(attributes, encoded, strict=True))
    for names in resolve_intersections(attributes, intersections):
        codes, levels, labels, n_missing = _intersection(names, [by_name[a] for a in names])
        groupings.append(Grouping(INTERSECTION_SEP.join(names), "intersection", labels, levels, codes, n_missing))

    # Finest cells: every attribute with "missing" as its own level (code + 1), then × label.
    if attributes:
        cell, _ = combine_codes([c + 1 for c, _ in encoded], [len(lab) + 1 for _, lab in encoded])
    else:
        cell = np.zeros(n, dtype=np.int64)
    n_cells = int(cell.max()) + 1 if n else 0
    stratum = cell * n_labels + np.asarray(y_true, dtype=np.int64)
    order = np.argsort(stratum, kind="stable") if sort_by is None else np.lexsort((sort_by, stratum))
    counts = np.bincount(stratum, minlength=n_labels * n_cells)
    bounds = np.concatenate([[0], np.cumsum(counts[counts > 0])])

    permuted = tuple(Grouping(g.attribute, g.kind, g.labels, g.levels, g.codes[order], g.n_missing) for g in groupings)
    return Design(permuted, cell[order], n_cells, bounds.astype(np.int64), order)
