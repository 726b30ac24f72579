"""A study's child trains on one fold: the cohort's stored split is replaced, here, where training
reads it, so the trainer, the threshold choice and the test evaluation all see the fold's split."""

from __future__ import annotations

import dataclasses
from typing import cast

import numpy as np

from app.cohorts.cache import CohortArrays
from app.cohorts.splits import fold_split, stratum_patients
from app.training.config import FoldPlan
from app.training.strata import stratum_labels


def fold_strata(arrays: CohortArrays, attributes: list[str]) -> list[tuple[object, ...]]:
    """Each item's stratum: its values of ``attributes`` (with the label, the folds' strata; a multi-label
    item's label part is its first present finding, ``app.training.strata``)."""
    columns = [arrays.attributes[name] for name in attributes]
    return [tuple(column[i] for column in columns) for i in range(len(arrays.labels))]


def apply_fold_plan(arrays: CohortArrays, plan: FoldPlan) -> CohortArrays:
    """``arrays`` with its split replaced by the plan's: test = the held-out fold, val carved from the rest."""
    split = fold_split(
        stratum_labels(arrays.labels, arrays.task).tolist(),
        fold_strata(arrays, plan.stratify_by),
        arrays.patient_ids.tolist(),
        folds=plan.folds,
        fold=plan.fold,
        seed=plan.split_seed,
        val_fraction=plan.val_fraction,
    )
    return dataclasses.replace(arrays, split=np.asarray(split, dtype=object))


def fold_plan_problems(arrays: CohortArrays, plan: FoldPlan) -> list[dict[str, str]]:
    """What stops the plan's folds from being drawn: an unknown stratification attribute, or more folds
    than patients in the smallest label × group stratum (named, so the user can merge or drop it;
    a stratum of samples missing a value is no group and is not counted)."""
    unknown = [name for name in plan.stratify_by if name not in arrays.attributes]
    if unknown:
        return [
            {
                "field": "fold_plan.stratify_by",
                "message": f"unknown attribute {name!r}; the cohort has: "
                f"{', '.join(sorted(arrays.attributes)) or 'none'}",
            }
            for name in unknown
        ]
    counts = stratum_patients(
        stratum_labels(arrays.labels, arrays.task).tolist(),
        fold_strata(arrays, plan.stratify_by),
        arrays.patient_ids.tolist(),
    )
    # samples missing a value join no group: they are dealt to folds too, but need not fill every fold
    grouped = {key: n for key, n in counts.items() if None not in cast(tuple[object, ...], key[1])}
    if not grouped:
        return []
    (label, stratum), smallest = min(grouped.items(), key=lambda item: item[1])
    if smallest >= plan.folds:
        return []
    cell = ", ".join(
        f"{name}={'missing' if v is None else v}"
        for name, v in zip(plan.stratify_by, cast(tuple[object, ...], stratum), strict=True)
    )
    where = f"label={_label_name(arrays, int(label))}" + (f", {cell}" if cell else "")
    return [
        {
            "field": "folds",
            "message": f"{plan.folds} folds need at least {plan.folds} patients in every label × group stratum; "
            f"the smallest, {where}, has {smallest}",
        }
    ]


def _label_name(arrays: CohortArrays, label: int) -> str:
    """A stratum label as the user knows it: 0/1, the class name, or a multi-label row's first finding."""
    task = arrays.task
    if task.kind == "binary":
        return str(label)
    if task.kind == "multiclass":
        return task.classes[label]
    return f"first finding {task.classes[label]}" if label < task.width else "no finding"
