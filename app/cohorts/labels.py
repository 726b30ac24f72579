"""From the labels of a manifest's rows to the cohort's task: the class list, class indices, and the
training-count rule (``min_class_count`` / ``other_class``).

Order of work (``manifest.parse_manifest``): ``resolve_task`` once every row is read (the class list
and each row's index), then the split, then ``enforce_class_counts`` on the training split, since
"too few training examples" is only known once the split is drawn. Merging never moves an item
between splits; it relabels the merged classes' items.

Class order (the logit order a model is trained in): the config's ``classes`` when declared, else the
preset's fixed order (``fitzpatrick17k`` three-partition labels, ``isic2019`` diagnoses — ``UNK``
only when some row has it, since the challenge's training set has none), else the sorted distinct
labels. An ``other_class`` that is not already a class is added last.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

from pydantic import ValidationError

from app.cohorts.config import FITZPATRICK_CLASSES, ISIC_CLASSES, CohortConfig
from app.cohorts.presets import Label
from app.core.errors import InputError
from app.modelpkg.task import BINARY, Task

#: Multi-class (index) or multi-label (vector) label of an accepted item.
Encoded = int | tuple[int, ...]


@dataclass(frozen=True)
class ResolvedLabels:
    """The task and each item's label as stored (binary 0/1, class index, or finding vector)."""

    task: Task
    labels: list[Encoded]
    merged: dict[str, list[str]] = field(default_factory=dict)  # other_class -> the classes merged into it


def resolve_task(config: CohortConfig, raw: Sequence[Label]) -> ResolvedLabels:
    """The task and encoded labels of the accepted rows; 422 when fewer than two classes remain."""
    if config.task == "binary":
        return ResolvedLabels(BINARY, list(cast(Sequence[int], raw)))
    if config.task == "multilabel":
        return ResolvedLabels(_task("multilabel", config.finding_names()), list(cast(Sequence[tuple[int, ...]], raw)))
    names = [str(v) for v in raw]
    classes = _class_order(config, set(names))
    if len(classes) < 2:
        found = ", ".join(classes) or "none"
        raise InputError(
            "a multiclass cohort needs at least two classes",
            [{"field": "task", "message": f"K = {len(classes)}: every usable row has the same class ({found})"}],
        )
    index = {name: i for i, name in enumerate(classes)}
    return ResolvedLabels(_task("multiclass", classes), [index[name] for name in names])


def enforce_class_counts(config: CohortConfig, resolved: ResolvedLabels, splits: Sequence[str]) -> ResolvedLabels:
    """Refuse (422, naming each class and its count) or, with ``other_class``, merge the classes with fewer
    than ``min_class_count`` training examples; multi-label findings are counted by training positives.
    A merged ``other_class`` that still has too few is refused too."""
    if resolved.task.kind == "binary":
        return resolved
    short = _short_classes(config, resolved, splits)
    if short and resolved.task.kind == "multiclass" and config.other_class is not None:
        resolved = _merge(resolved, {name for name, _ in short}, config.other_class)
        short = _short_classes(config, resolved, splits)
    if not short:
        return resolved
    multilabel = resolved.task.kind == "multilabel"
    what = "finding" if multilabel else "class"
    examples = "positive training examples" if multilabel else "training examples"
    hint = "" if multilabel or config.other_class else "; set other_class to merge such classes into one"
    raise InputError(
        f"{len(short)} of the {what}{'s' if multilabel else 'es'} have fewer than {config.min_class_count} "
        f"{examples}{hint}",
        [
            {"field": "min_class_count", what: name, "count": n, "message": f"{what} {name!r} has {n} {examples}"}
            for name, n in short
        ],
    )


def _short_classes(config: CohortConfig, resolved: ResolvedLabels, splits: Sequence[str]) -> list[tuple[str, int]]:
    """The classes (findings) with fewer than ``min_class_count`` training examples (positives), and their counts."""
    train = [y for y, s in zip(resolved.labels, splits, strict=True) if s == "train"]
    names = resolved.task.classes
    if resolved.task.kind == "multilabel":
        vectors = cast(list[tuple[int, ...]], train)
        counts = [sum(1 for y in vectors if y[f] == 1) for f in range(len(names))]
    else:
        tally = Counter(train)
        counts = [tally[c] for c in range(len(names))]
    return [(name, n) for name, n in zip(names, counts, strict=True) if n < config.min_class_count]


def _merge(resolved: ResolvedLabels, rare: set[str], other: str) -> ResolvedLabels:
    """The labels with the ``rare`` classes relabelled as ``other`` (an existing class, or a new last one)."""
    old = resolved.task.classes
    classes = [name for name in old if name not in rare or name == other]
    if other not in classes:
        classes.append(other)
    merged = [name for name in old if name in rare and name != other]
    if len(classes) < 2:
        raise InputError(
            "a multiclass cohort needs at least two classes",
            [
                {
                    "field": "other_class",
                    "message": f"K = 1: merging {', '.join(merged)} into {other!r} leaves one class",
                }
            ],
        )
    target = [classes.index(other if name in rare else name) for name in old]
    labels: list[Encoded] = [target[y] for y in cast(list[int], resolved.labels)]
    return ResolvedLabels(_task("multiclass", classes), labels, {other: merged} if merged else {})


def _class_order(config: CohortConfig, seen: set[str]) -> list[str]:
    if config.classes is not None:
        return list(config.classes)
    if config.preset == "fitzpatrick17k" and config.label_field == "three_partition_label":
        return list(FITZPATRICK_CLASSES)
    if config.preset == "isic2019":
        return [c for c in ISIC_CLASSES if c != "UNK" or c in seen]
    return sorted(seen)


def _task(kind: str, classes: list[str]) -> Task:
    try:
        return Task.model_validate({"kind": kind, "classes": classes})
    except ValidationError as exc:
        message = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise InputError("the cohort's classes do not make a task", [{"field": "task", "message": message}]) from exc
