"""The cohort summary shown with a cohort: who is in it, per split, and where groups are too small.

Shape (JSON-serialisable)::

    {
      "n": 1234,
      "splits": {"train": {"n": 864, "positives": 90, "negatives": 774}, "val": {...}, "test": {...}},
      "groupings": {
        "sex": {
          "attributes": ["sex"],
          "missing": 12, "missing_rate": 0.0097,
          "cells": [{"group": {"sex": "female"}, "split": "train", "label": 0, "count": 380}, ...]
        },
        "sex&age_group": {"attributes": ["sex", "age_group"], ...}
      },
      "warnings": [{"grouping": "sex&age_group", "group": {"sex": "female", "age_group": ">=75"},
                    "split": "test", "label": 1, "count": 3, "message": "..."}]
    }

There is one grouping per attribute and, with two or more attributes, one for their full
intersection (key: names joined by ``&``); the derived attributes of user-defined groupings get one
grouping each and join no intersection (each only coarsens one attribute). An item whose value is
missing (``None``) for any attribute of a grouping joins no group of it and counts in ``missing``.
``cells`` lists observed cells only (count > 0), ordered by group, split (train, val, test) and label.
``warnings`` names every group — observed anywhere in the cohort — with fewer than ``min_count``
positives or negatives in a split (zero included), since its metrics in that split would be unreliable or undefined.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from app.cohorts.config import SPLITS


def summarize(
    labels: Sequence[int],
    splits: Sequence[str],
    attributes: Mapping[str, Sequence[str | None]],
    min_count: int = 10,
    derived: Mapping[str, Sequence[str | None]] | None = None,
) -> dict[str, Any]:
    """Counts per split × label × group (see the module docstring for the shape)."""
    derived = derived or {}
    n = len(labels)
    totals = Counter(splits)
    present = [s for s in SPLITS if s in totals]
    positives = Counter(s for s, y in zip(splits, labels, strict=True) if y == 1)
    names = list(attributes)
    groupings = [[name] for name in names] + ([names] if len(names) > 1 else []) + [[name] for name in derived]
    attributes = {**attributes, **derived}
    summary: dict[str, Any] = {
        "n": n,
        "splits": {
            s: {"n": totals[s], "positives": positives[s], "negatives": totals[s] - positives[s]} for s in present
        },
        "groupings": {},
        "warnings": [],
    }
    for grouping in groupings:
        key = "&".join(grouping)
        groups = list(zip(*(attributes[name] for name in grouping), strict=True))
        counts = Counter(
            (group, split, int(label))
            for group, split, label in zip(groups, splits, labels, strict=True)
            if None not in group
        )
        missing = sum(1 for group in groups if None in group)
        summary["groupings"][key] = {
            "attributes": grouping,
            "missing": missing,
            "missing_rate": missing / n if n else 0.0,
            "cells": [
                {"group": dict(zip(grouping, g, strict=True)), "split": s, "label": y, "count": c}
                for (g, s, y), c in sorted(counts.items(), key=lambda kv: _order(kv[0]))
            ],
        }
        observed = sorted({g for g, _, _ in counts})
        summary["warnings"].extend(
            _small_group_warning(key, dict(zip(grouping, g, strict=True)), s, y, counts[(g, s, y)], min_count)
            for g in observed
            for s in present
            for y in (1, 0)
            if counts[(g, s, y)] < min_count
        )
    return summary


def _order(cell: tuple[tuple[str, ...], str, int]) -> tuple[tuple[str, ...], int, int]:
    group, split, label = cell
    return group, SPLITS.index(split) if split in SPLITS else len(SPLITS), label


def _small_group_warning(
    grouping: str, group: dict[str, str], split: str, label: int, count: int, min_count: int
) -> dict[str, Any]:
    described = ", ".join(f"{k}={v}" for k, v in group.items())
    kind = "positives" if label == 1 else "negatives"
    return {
        "grouping": grouping,
        "group": group,
        "split": split,
        "label": label,
        "count": count,
        "message": f"{described} has {count} {kind} in {split} (fewer than {min_count})",
    }
