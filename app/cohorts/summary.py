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

Multi-class and multi-label cohorts add ``task``, ``classes`` (class or finding names) and ``merged``
(``other_class`` -> the classes merged into it), and count by class or finding:

- multiclass: ``splits[s] = {"n", "classes": {name: count}}``; cells ``{"group", "split", "class",
  "count"}``; the small-group rule is applied to each class one-vs-rest (its metrics are), so a warning
  names the ``class`` and ``label`` 1 (too few of the class) or 0 (too few of the other classes).
- multilabel: ``splits[s] = {"n", "findings": {name: {"positives", "negatives", "unknown"}}}``; cells
  and warnings are the binary ones per finding, with a ``finding`` key; unknown (−1) values count nowhere.
- both list at most ``MAX_TASK_WARNINGS`` warnings, in the order above, and count the rest in
  ``warnings_omitted``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from app.cohorts.config import SPLITS
from app.modelpkg.task import BINARY, Task

Group = tuple[str | None, ...]
#: Small-cell warnings listed for a multi-class or multi-label cohort (Fitzpatrick 17k's 114 fine classes
#: give thousands, 0.8 MB; the cells hold every count anyway); the rest are counted in ``warnings_omitted``.
MAX_TASK_WARNINGS = 500


def summarize(
    labels: Sequence[int] | Sequence[Sequence[int]],
    splits: Sequence[str],
    attributes: Mapping[str, Sequence[str | None]],
    min_count: int = 10,
    derived: Mapping[str, Sequence[str | None]] | None = None,
    *,
    task: Task = BINARY,
    merged: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Counts per split × label × group (see the module docstring for the shape)."""
    derived = derived or {}
    n = len(labels)
    totals = Counter(splits)
    present = [s for s in SPLITS if s in totals]
    names = list(attributes)
    groupings = [[name] for name in names] + ([names] if len(names) > 1 else []) + [[name] for name in derived]
    attributes = {**attributes, **derived}
    summary: dict[str, Any] = {"n": n, "splits": _split_counts(task, labels, splits, present, totals)}
    if task.kind != "binary":
        summary.update(task=task.kind, classes=list(task.classes), merged=dict(merged or {}))
    summary.update(groupings={}, warnings=[])
    for grouping in groupings:
        key = "&".join(grouping)
        groups: list[Group] = list(zip(*(attributes[name] for name in grouping), strict=True))
        missing = sum(1 for group in groups if None in group)
        cells, warnings = _CELLS[task.kind](
            _Grouping(key, grouping, groups, splits, present, min_count), labels, task.classes
        )
        summary["groupings"][key] = {
            "attributes": grouping,
            "missing": missing,
            "missing_rate": missing / n if n else 0.0,
            "cells": cells,
        }
        summary["warnings"].extend(warnings)
    if task.kind != "binary":
        summary["warnings_omitted"] = max(0, len(summary["warnings"]) - MAX_TASK_WARNINGS)
        summary["warnings"] = summary["warnings"][:MAX_TASK_WARNINGS]
    return summary


def _split_counts(
    task: Task,
    labels: Sequence[int] | Sequence[Sequence[int]],
    splits: Sequence[str],
    present: list[str],
    totals: Counter[str],
) -> dict[str, Any]:
    if task.kind == "multiclass":
        classes = Counter(zip(splits, cast(Sequence[int], labels), strict=True))
        return {
            s: {"n": totals[s], "classes": {c: classes[(s, k)] for k, c in enumerate(task.classes)}} for s in present
        }
    if task.kind == "multilabel":
        vectors = cast(Sequence[Sequence[int]], labels)
        values = Counter((s, f, y) for s, v in zip(splits, vectors, strict=True) for f, y in enumerate(v))
        return {
            s: {
                "n": totals[s],
                "findings": {
                    name: {
                        "positives": values[(s, f, 1)],
                        "negatives": values[(s, f, 0)],
                        "unknown": values[(s, f, -1)],
                    }
                    for f, name in enumerate(task.classes)
                },
            }
            for s in present
        }
    positives = Counter(s for s, y in zip(splits, labels, strict=True) if y == 1)
    return {s: {"n": totals[s], "positives": positives[s], "negatives": totals[s] - positives[s]} for s in present}


@dataclass(frozen=True)
class _Grouping:
    """One grouping's items: each item's group (``None`` inside = missing) and split."""

    key: str
    names: list[str]
    groups: list[Group]
    splits: Sequence[str]
    present: list[str]
    min_count: int

    def described(self, group: Group) -> dict[str, str]:
        return dict(zip(self.names, cast(tuple[str, ...], group), strict=True))


Cells = tuple[list[dict[str, Any]], list[dict[str, Any]]]


def _binary_cells(g: _Grouping, labels: Sequence[int | None], extra: Mapping[str, str] | None = None) -> Cells:
    """Cells and small-group warnings of one 0/1 target (``None``: unknown, counted nowhere)."""
    extra = extra or {}
    counts = Counter(
        (group, split, int(label))
        for group, split, label in zip(g.groups, g.splits, labels, strict=True)
        if None not in group and label is not None
    )
    cells = [
        {"group": g.described(group), "split": s, **extra, "label": y, "count": c}
        for (group, s, y), c in sorted(counts.items(), key=lambda kv: _order(kv[0]))
    ]
    observed = sorted({group for group, _, _ in counts})
    warnings = [
        _small_group_warning(g, group, s, y, counts[(group, s, y)], "positives" if y == 1 else "negatives", extra)
        for group in observed
        for s in g.present
        for y in (1, 0)
        if counts[(group, s, y)] < g.min_count
    ]
    return cells, warnings


def _binary(g: _Grouping, labels: Sequence[int] | Sequence[Sequence[int]], classes: list[str]) -> Cells:
    return _binary_cells(g, cast(Sequence[int], labels))


def _multilabel(g: _Grouping, labels: Sequence[int] | Sequence[Sequence[int]], findings: list[str]) -> Cells:
    """Each finding as a binary target (unknown values count nowhere), cells and warnings tagged with it."""
    vectors = cast(Sequence[Sequence[int]], labels)
    cells: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    for f, name in enumerate(findings):
        found = _binary_cells(g, [v[f] if v[f] != -1 else None for v in vectors], {"finding": name})
        cells.extend(found[0])
        warnings.extend(found[1])
    return cells, warnings


def _multiclass(g: _Grouping, labels: Sequence[int] | Sequence[Sequence[int]], classes: list[str]) -> Cells:
    """Counts per group × split × class; warnings per class, one-vs-rest (the class against the others),
    the binary rule applied to each class."""
    indices = cast(Sequence[int], labels)
    counts = Counter(
        (group, split, k) for group, split, k in zip(g.groups, g.splits, indices, strict=True) if None not in group
    )
    totals = Counter((group, split) for group, split, _ in counts.elements())
    cells = [
        {"group": g.described(group), "split": s, "class": classes[k], "count": c}
        for (group, s, k), c in sorted(counts.items(), key=lambda kv: _order(kv[0]))
    ]
    observed = sorted({group for group, _, _ in counts})
    warnings = []
    for group in observed:
        for s in g.present:
            for k, name in enumerate(classes):
                own = counts[(group, s, k)]
                for y, count, kind in (
                    (1, own, f"examples of {name!r}"),
                    (0, totals[(group, s)] - own, f"examples of other classes than {name!r}"),
                ):
                    if count < g.min_count:
                        warnings.append(_small_group_warning(g, group, s, y, count, kind, {"class": name}))
    return cells, warnings


_CELLS = {"binary": _binary, "multiclass": _multiclass, "multilabel": _multilabel}


def _order(cell: tuple[Group, str, int]) -> tuple[Group, int, int]:
    group, split, label = cell
    return group, SPLITS.index(split) if split in SPLITS else len(SPLITS), label


def _small_group_warning(
    g: _Grouping, group: Group, split: str, label: int, count: int, kind: str, extra: Mapping[str, str]
) -> dict[str, Any]:
    described = g.described(group)
    where = ", ".join(f"{k}={v}" for k, v in described.items())
    prefix = f"finding {extra['finding']!r}: " if "finding" in extra else ""
    return {
        "grouping": g.key,
        "group": described,
        "split": split,
        **extra,
        "label": label,
        "count": count,
        "message": f"{prefix}{where} has {count} {kind} in {split} (fewer than {g.min_count})",
    }
