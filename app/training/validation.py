"""Check a training config against the cohort before any training starts.

Every problem found is reported at once, as ``InputError`` entries ``{"field", "message"}``, so a
user fixes a request in one round trip instead of discovering problems an epoch at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import ValidationError

from app.cohorts.cache import CohortArrays
from app.cohorts.groupings import grouping_problems
from app.core.error_list import capped
from app.core.errors import InputError
from app.modelpkg.task import Task
from app.training.config import MIN_IMAGE_SIZE, TrainingConfig
from app.training.folds import apply_fold_plan, fold_plan_problems
from app.training.groups import encode_groups
from app.training.terms import get_term

SPLITS = ("train", "val", "test")


def parse_config(data: TrainingConfig | Mapping[str, Any]) -> TrainingConfig:
    """Turn request data into a config, reporting pydantic's errors as field-level ``InputError``s."""
    if isinstance(data, TrainingConfig):
        return data
    try:
        return TrainingConfig.model_validate(dict(data))
    except ValidationError as exc:
        errors = capped(
            {"field": ".".join(str(p) for p in e["loc"]) or "config", "message": e["msg"]} for e in exc.errors()
        )
        raise InputError("invalid training config", errors) from exc


def _cohort_problems(config: TrainingConfig, cohort: CohortArrays) -> list[dict[str, str]]:
    problems: list[dict[str, str]] = grouping_problems(config.groupings, cohort.attributes)
    if problems:
        return problems
    cohort = cohort.with_groupings(config.groupings)

    def problem(field: str, message: str) -> None:
        problems.append({"field": field, "message": message})

    if cohort.channels not in (1, 3):
        problem("cohort", f"images have {cohort.channels} channels; 1 (grey) or 3 (RGB) are supported")
    size = config.image_size or cohort.image_size
    if size != cohort.image_size:
        problem(
            "image_size",
            f"the cohort cache holds {cohort.image_size}px images; use image_size={cohort.image_size} "
            f"or re-ingest the cohort at {size}px",
        )
    if size < MIN_IMAGE_SIZE[config.backbone]:
        problem("image_size", f"{config.backbone} needs images of at least {MIN_IMAGE_SIZE[config.backbone]}px")

    problems += task_problems(config, cohort)

    n_train = int((cohort.split == "train").sum())
    if config.batch_size > n_train:
        problem("batch_size", f"batch_size {config.batch_size} exceeds the {n_train} training samples")

    unknown = [a for a in config.sensitive_attributes if a not in cohort.attributes]
    for name in unknown:
        known = ", ".join(sorted(cohort.attributes)) or "none"
        problem("sensitive_attributes", f"unknown attribute {name!r}; the cohort has: {known}")
    train = cohort.split == "train"
    for name in config.sensitive_attributes:
        if name in unknown:
            continue
        values = {v for v in cohort.attributes[name][train] if v is not None}
        if len(values) < 2:
            shown = f" ({next(iter(values))})" if values else ""
            problem(
                "sensitive_attributes",
                f"attribute {name!r} has {len(values)} group{shown} in the training split",
            )
    if not unknown and len(config.sensitive_attributes) > 1 and not problems:
        cells = encode_groups(cohort.attributes, config.sensitive_attributes).codes[train]
        if len(np.unique(cells[cells >= 0])) < 2:
            problem("sensitive_attributes", "the attributes' intersection has fewer than 2 groups in training")

    for i, names in enumerate(config.report_intersections or []):
        absent = [a for a in names if a not in cohort.attributes]
        if absent or len(set(names)) != len(names):
            what = f"unknown attribute(s) {', '.join(map(repr, absent))}" if absent else "an attribute twice"
            problem(
                f"report_intersections.{i}", f"names {what}; the cohort has: {', '.join(sorted(cohort.attributes))}"
            )

    if cohort.task.kind == "binary":  # other tasks refuse a constraint in task_problems
        problems += _constraint_problems(config, cohort)
    weights = config.pretrained_weights
    if weights is not None and weights.is_absolute() and not weights.is_file():  # relative: caller resolves
        problem("pretrained_weights", f"no file at {weights}")
    return problems


def task_problems(config: TrainingConfig, cohort: CohortArrays) -> list[dict[str, str]]:
    """Every split holds what the task needs, the labels fit the task, and no option of another task is
    set. Binary: positives and negatives in every split. Multiclass: every class has a training example
    (a head for a class never seen cannot be trained or thresholded), val and test are non-empty.
    Multilabel: every finding has a known positive and negative in training, no row lacks every finding."""
    task, labels = cohort.task, cohort.labels
    problems = [
        {"field": name, "message": f"{name} applies to multiclass cohorts only; this cohort's task is {task.kind}"}
        for name in ("class_balanced", "class_thresholds")
        if getattr(config, name) and task.kind != "multiclass"
    ]
    for i, term in enumerate(config.terms):
        if task.kind not in get_term(term.name).tasks:
            message = (
                f"{term.name} conditions on the class, which a {task.kind} task does not have (a sample may "
                f"have several findings); use pairwise_eo or train without it"
            )
            problems.append({"field": f"terms.{i}", "message": message})
    if task.kind != "binary" and config.threshold_constraint is not None:
        message = f"threshold_constraint applies to binary cohorts only; this cohort's task is {task.kind}"
        problems.append({"field": "threshold_constraint", "message": message})
    if task.kind == "multiclass" and config.threshold_rule != "youden":
        message = "a multiclass decision is argmax (or class_thresholds), chosen by no threshold_rule"
        problems.append({"field": "threshold_rule", "message": message})
    shape = (len(cohort.split),) if task.kind != "multilabel" else (len(cohort.split), task.width)
    if labels.shape != shape:
        return [
            *problems,
            {"field": "cohort", "message": f"labels have shape {labels.shape}, the {task.kind} task {shape}"},
        ]
    allowed = {"binary": (0, 1), "multiclass": tuple(range(task.width)), "multilabel": (-1, 0, 1)}[task.kind]
    outside = np.flatnonzero(~np.isin(labels, allowed).reshape(len(labels), -1).all(axis=1))
    if len(outside):
        row = int(outside[0])
        message = f"item {cohort.item_ids[row]} (row {row}) has label {labels[row].tolist()}, outside {list(allowed)}"
        return [*problems, {"field": "cohort", "message": message}]
    for split in SPLITS:
        part = labels[cohort.split == split]
        if len(part) == 0:
            problems.append({"field": "cohort", "message": f"the {split} split is empty"})
        elif task.kind == "binary":
            if not (part == 1).any():
                problems.append({"field": "cohort", "message": f"the {split} split has no positives"})
            elif not (part == 0).any():
                problems.append({"field": "cohort", "message": f"the {split} split has no negatives"})
        elif split == "train":
            problems += _training_label_problems(task, part)
    if task.kind == "multilabel":
        blank = np.flatnonzero((labels < 0).all(axis=1))
        if len(blank):
            row = int(blank[0])
            message = f"item {cohort.item_ids[row]} (row {row}) and {len(blank) - 1} more have every finding unknown"
            problems.append({"field": "cohort", "message": message})
    return problems


def _training_label_problems(task: Task, labels: np.ndarray) -> list[dict[str, str]]:
    if task.kind == "multiclass":
        counts = np.bincount(labels.astype(np.int64), minlength=task.width)
        return [
            {"field": "cohort", "message": f"class {name!r} has no example in the training split"}
            for name, n in zip(task.classes, counts, strict=True)
            if n == 0
        ]
    problems = []
    for f, name in enumerate(task.classes):
        for value, what in ((1, "positive"), (0, "negative")):
            if not (labels[:, f] == value).any():
                problems.append({"field": "cohort", "message": f"finding {name!r} has no {what} in the training split"})
    return problems


def _constraint_problems(config: TrainingConfig, cohort: CohortArrays) -> list[dict[str, str]]:
    """The constrained rule's groups must exist and be large enough on val to bind the threshold."""
    constraint = config.threshold_constraint
    if constraint is None:
        return []
    names = config.threshold_group_attributes
    if any(name not in cohort.attributes for name in names):
        if constraint.attribute is None:
            return []  # an unknown sensitive attribute is reported once, above
        known = ", ".join(sorted(cohort.attributes)) or "none"
        message = f"unknown attribute {constraint.attribute!r}; the cohort has: {known}"
        return [{"field": "threshold_constraint.attribute", "message": message}]
    val = cohort.split == "val"
    groups = encode_groups(cohort.attributes, names)
    codes, labels = groups.codes[val], cohort.labels[val]
    n_pos = np.bincount(codes[(codes >= 0) & (labels == 1)], minlength=groups.n_groups)
    n_neg = np.bincount(codes[(codes >= 0) & (labels == 0)], minlength=groups.n_groups)
    held = int(((n_pos >= constraint.min_group_count) & (n_neg >= constraint.min_group_count)).sum())
    spreads_only = constraint.max_fpr is None and constraint.min_tpr is None
    if held >= (2 if spreads_only else 1):
        return []
    return [
        {
            "field": "threshold_constraint.min_group_count",
            "message": f"{held} of the {groups.n_groups} groups of {' × '.join(names)} have at least "
            f"{constraint.min_group_count} positives and {constraint.min_group_count} negatives in the validation "
            f"split; the band would bind {'nothing' if held == 0 else 'a single group'}",
        }
    ]


def validate_training_config(data: TrainingConfig | Mapping[str, Any], cohort: CohortArrays) -> TrainingConfig:
    """The config to train with (``image_size`` filled in), or ``InputError`` naming every problem. The
    config's groupings are checked against the cohort's values first, then its attributes (derived ones
    included) are. A config with a ``fold_plan`` is checked against that fold's split, not the stored one."""
    config = parse_config(data)
    if config.fold_plan is not None:  # checked against the fold's split, the one it will train on
        problems = fold_plan_problems(cohort, config.fold_plan)
        if problems:
            raise InputError("the fold plan does not fit the cohort", problems)
        cohort = apply_fold_plan(cohort, config.fold_plan)
    problems = _cohort_problems(config, cohort)
    if problems:
        where = f"{config.fold_plan.label} of " if config.fold_plan is not None else ""
        raise InputError(f"the training config does not fit {where}the cohort", problems)
    return config.model_copy(update={"image_size": cohort.image_size})
