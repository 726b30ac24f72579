"""Parsing an uploaded predictions CSV (``POST /v1/audits``) into a prediction set of the audit's task.

Columns by task (``AuditConfig.task``):

- ``binary``: ``y_true`` (0/1) and ``y_score`` (probability of the positive class, in [0, 1]);
- ``multiclass``: ``y_true`` (a class name) and one ``score_<class>`` per class (its probability; a row's
  scores sum to 1 ± 1e-4). The classes are the config's ``classes`` (their order), else the
  ``score_<class>`` columns in file order; at least two;
- ``multilabel``: per finding ``y_true_<finding>`` (1, 0, or blank = unknown: the row takes no part in that
  finding's metrics) and ``score_<finding>``. The findings are the config's ``classes``, else every
  ``y_true_<finding>`` column; a row must know at least one finding.

Every task also has one column per sensitive attribute named in the config and optionally ``sample_id``
(needed to pair this audit with another in a comparison; unique). Blank attribute cells are missing
values (they join no group). Every bad cell is reported, by row and column, in one error (the first
``max_reported_errors``, and a count of the rest).

The file is streamed (``app.core.csv_input`` bounds its header, rows and cells): memory holds the
parsed columns, a byte per label, eight per score and a pointer per attribute cell (repeated group
names are stored once), never the file's text.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from typing import IO

import numpy as np

from app.core.csv_input import CsvLimits, read_csv
from app.core.error_list import ErrorList
from app.core.errors import InputError
from app.fairness.engine.inputs import AnyPredictionSet, MulticlassPredictionSet, MultilabelPredictionSet, PredictionSet
from app.modelpkg.task import TaskKind
from app.settings import Settings

_HEADER_SHOWN = 20  # header names quoted in a missing-column message
SCORE_PREFIX, LABEL_PREFIX = "score_", "y_true_"
SUM_TOLERANCE = 1e-4  # a multiclass row's probabilities sum to 1 within this


def parse_predictions_csv(
    source: IO[bytes],
    attributes: list[str],
    settings: Settings,
    task: TaskKind = "binary",
    classes: Sequence[str] | None = None,
) -> AnyPredictionSet:
    """The predictions of ``task`` (``classes``: the audit config's class or finding names, if given);
    ``InputError`` naming every bad row and column, and nothing kept, otherwise."""
    errors = ErrorList(settings.max_reported_errors)
    groups: dict[str, list[str | None]] = {a: [] for a in attributes}
    names: dict[str, str] = {}  # one object per distinct group name
    ids: dict[str, int] = {}  # sample id -> row
    limits = CsvLimits.from_settings(settings)
    with read_csv(source, limits, what="the predictions file", file="predictions") as table:
        header = table.header
        reader = _reader(task, header, classes)
        _check_columns(header, [*reader.columns, *attributes])
        index = {name: i for i, name in enumerate(header)}
        reader.bind(index)
        id_at = index.get("sample_id")
        group_at = [(a, index[a]) for a in attributes]
        for row, cells in table.rows:
            if len(cells) != len(header):
                errors.add({"row": row, "message": f"has {len(cells)} cells, the header has {len(header)}"})
                continue
            reader.read(row, cells, errors)
            for a, at in group_at:
                value = cells[at].strip()
                groups[a].append(names.setdefault(value, value) if value else None)
            if id_at is not None:
                sample = cells[id_at].strip()
                if sample in ids:
                    errors.add(
                        {"row": row, "column": "sample_id", "message": f"{sample!r} is also on row {ids[sample]}"}
                    )
                else:
                    ids[sample] = row
    if errors:
        raise errors.error(f"the predictions file has {errors.count:,} problem(s)")
    if reader.n < 2:
        raise InputError("an audit needs at least two rows of predictions", status=422)
    for a, values in groups.items():
        observed = {v for v in values if v is not None}
        if len(observed) < 2:
            raise InputError(
                "every sensitive attribute needs at least two groups to compare",
                [{"column": a, "message": f"only {sorted(observed) or 'missing values'} found"}],
            )
    return reader.build(
        {a: _objects(values) for a, values in groups.items()}, _objects(list(ids)) if id_at is not None else None
    )


def _reader(task: TaskKind, header: list[str], classes: Sequence[str] | None) -> _Binary | _Multiclass | _Multilabel:
    if task == "multiclass":
        return _Multiclass(_class_names(header, classes))
    if task == "multilabel":
        return _Multilabel(_finding_names(header, classes))
    return _Binary()


def _probability(cells: list[str], at: int, row: int, column: str, errors: ErrorList) -> float:
    """The cell as a probability; a cell that is not one in [0, 1] (NaN included) is a named error."""
    try:
        score = float(cells[at])
    except ValueError:
        score = math.nan
    if not (math.isfinite(score) and 0.0 <= score <= 1.0):
        errors.add({"row": row, "column": column, "message": f"{cells[at]!r} is not a probability in [0, 1]"})
    return score


class _Binary:
    columns = ("y_true", "y_score")

    def __init__(self) -> None:
        self.labels, self.scores = array("b"), array("d")

    @property
    def n(self) -> int:
        return len(self.labels)

    def bind(self, index: dict[str, int]) -> None:
        self.label_at, self.score_at = index["y_true"], index["y_score"]

    def read(self, row: int, cells: list[str], errors: ErrorList) -> None:
        label = cells[self.label_at].strip()
        if label not in ("0", "1"):
            errors.add({"row": row, "column": "y_true", "message": f"{label!r} is not 0 or 1"})
        self.labels.append(label == "1")
        self.scores.append(_probability(cells, self.score_at, row, "y_score", errors))

    def build(self, groups: dict[str, np.ndarray], sample_ids: np.ndarray | None) -> PredictionSet:
        return PredictionSet(
            y_true=np.frombuffer(self.labels, dtype=np.int8).astype(np.int64),
            exit_scores=np.frombuffer(self.scores, dtype=np.float64)[:, None].copy(),
            groups=groups,
            threshold=0.5,
            sample_ids=sample_ids,
        )


def _class_names(header: list[str], configured: Sequence[str] | None) -> list[str]:
    """The multiclass audit's classes: as configured (a ``score_`` column of another class is an error:
    its probability would be left out of the row's sum), else every ``score_<class>`` column."""
    scored = [name.removeprefix(SCORE_PREFIX) for name in header if name.startswith(SCORE_PREFIX)]
    if configured is not None:
        extra = [name for name in scored if name not in configured]
        if extra:
            raise InputError(
                "the predictions file scores classes the config does not list",
                [
                    {"column": f"{SCORE_PREFIX}{name}", "message": f"{name!r} is not one of classes {list(configured)}"}
                    for name in extra
                ],
            )
        return list(configured)
    if "" in scored or len(scored) < 2:
        raise InputError(
            "a multiclass audit needs a score_<class> column for each of at least two classes (K >= 2)",
            [{"column": f"{SCORE_PREFIX}<class>", "message": f"found {len(scored)}: {_shown(header)}"}],
        )
    return scored


def _finding_names(header: list[str], configured: Sequence[str] | None) -> list[str]:
    """The multi-label audit's findings: as configured, else every ``y_true_<finding>`` column and every
    ``score_<finding>`` one (a score without its labels then shows as a missing ``y_true_`` column)."""
    if configured is not None:
        return list(configured)
    found = [
        name[len(prefix) :] for name in header for prefix in (LABEL_PREFIX, SCORE_PREFIX) if name.startswith(prefix)
    ]
    findings = list(dict.fromkeys(name for name in found if name))
    if not findings:
        raise InputError(
            "a multilabel audit needs y_true_<finding> and score_<finding> columns for at least one finding",
            [{"column": f"{LABEL_PREFIX}<finding>", "message": f"none found: {_shown(header)}"}],
        )
    return findings


class _Multiclass:
    def __init__(self, classes: list[str]) -> None:
        self.classes = classes
        self.class_of = {name: k for k, name in enumerate(classes)}
        self.columns = ("y_true", *(f"{SCORE_PREFIX}{name}" for name in classes))
        self.labels, self.scores = array("h"), array("d")

    @property
    def n(self) -> int:
        return len(self.labels)

    def bind(self, index: dict[str, int]) -> None:
        self.label_at = index["y_true"]
        self.score_at = [index[f"{SCORE_PREFIX}{name}"] for name in self.classes]

    def read(self, row: int, cells: list[str], errors: ErrorList) -> None:
        label = cells[self.label_at].strip()
        k = self.class_of.get(label)
        if k is None:
            shown = ", ".join(self.classes[:_HEADER_SHOWN]) + (", …" if len(self.classes) > _HEADER_SHOWN else "")
            errors.add({"row": row, "column": "y_true", "message": f"{label!r} is not one of the classes ({shown})"})
        self.labels.append(-1 if k is None else k)
        before = errors.count
        scores = [
            _probability(cells, at, row, f"{SCORE_PREFIX}{name}", errors)
            for at, name in zip(self.score_at, self.classes, strict=True)
        ]
        total = math.fsum(scores)
        if errors.count == before and abs(total - 1.0) > SUM_TOLERANCE:
            message = f"the class scores sum to {total:.6g}, not 1 (± {SUM_TOLERANCE:g})"
            errors.add({"row": row, "column": f"{SCORE_PREFIX}*", "message": message})
        self.scores.extend(scores)

    def build(self, groups: dict[str, np.ndarray], sample_ids: np.ndarray | None) -> MulticlassPredictionSet:
        k = len(self.classes)
        return MulticlassPredictionSet(
            y_true=np.frombuffer(self.labels, dtype=np.int16).astype(np.int64),
            exit_probs=np.frombuffer(self.scores, dtype=np.float64).reshape(self.n, 1, k).copy(),
            classes=tuple(self.classes),
            groups=groups,
            sample_ids=sample_ids,
        )


class _Multilabel:
    def __init__(self, findings: list[str]) -> None:
        self.findings = findings
        self.columns = tuple(f"{prefix}{name}" for name in findings for prefix in (LABEL_PREFIX, SCORE_PREFIX))
        self.labels, self.scores = array("b"), array("d")

    @property
    def n(self) -> int:
        return len(self.labels) // len(self.findings)

    def bind(self, index: dict[str, int]) -> None:
        self.at = [(index[f"{LABEL_PREFIX}{f}"], index[f"{SCORE_PREFIX}{f}"]) for f in self.findings]

    def read(self, row: int, cells: list[str], errors: ErrorList) -> None:
        known = 0
        for finding, (label_at, score_at) in zip(self.findings, self.at, strict=True):
            label = cells[label_at].strip()
            if label not in ("0", "1", ""):
                errors.add(
                    {"row": row, "column": f"{LABEL_PREFIX}{finding}", "message": f"{label!r} is not 1, 0 or blank"}
                )
            value = {"1": 1, "0": 0}.get(label, -1)
            known += value >= 0
            self.labels.append(value)
            self.scores.append(_probability(cells, score_at, row, f"{SCORE_PREFIX}{finding}", errors))
        if not known:
            message = "every finding is unknown (blank): the row takes part in no metric"
            errors.add({"row": row, "column": f"{LABEL_PREFIX}*", "message": message})

    def build(self, groups: dict[str, np.ndarray], sample_ids: np.ndarray | None) -> MultilabelPredictionSet:
        f = len(self.findings)
        return MultilabelPredictionSet(
            y_true=np.frombuffer(self.labels, dtype=np.int8).reshape(self.n, f).astype(np.int64),
            exit_scores=np.frombuffer(self.scores, dtype=np.float64).reshape(self.n, 1, f).copy(),
            findings=tuple(self.findings),
            groups=groups,
            thresholds=np.full(f, 0.5),
            sample_ids=sample_ids,
        )


def _shown(header: list[str]) -> list[str]:
    return header[:_HEADER_SHOWN] + (["…"] if len(header) > _HEADER_SHOWN else [])


def _check_columns(header: list[str], required: Sequence[str]) -> None:
    present = set(header)
    missing = [c for c in required if c not in present]
    if missing:
        shown = _shown(header)
        raise InputError(
            "the predictions file is missing required columns",
            [{"column": c, "message": f"column {c!r} not found; header is {shown}"} for c in missing],
        )


def _objects(values: list[str | None]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
