"""Parsing an uploaded predictions CSV (``POST /v1/audits``) into a ``PredictionSet``.

Columns: ``y_true`` (0/1), ``y_score`` (probability of the positive class, in [0, 1]), one column per
sensitive attribute named in the config, and optionally ``sample_id`` (needed to pair this audit
with another in a comparison; unique). Blank attribute cells are missing values (they join no group).
Every bad cell is reported, by row and column, in one error (the first ``max_reported_errors``, and a
count of the rest).

The file is streamed (``app.core.csv_input`` bounds its header, rows and cells): memory holds the
parsed columns, a byte per label, eight per score and a pointer per attribute cell (repeated group
names are stored once), never the file's text.
"""

from __future__ import annotations

import math
from array import array
from typing import IO

import numpy as np

from app.core.csv_input import CsvLimits, read_csv
from app.core.error_list import ErrorList
from app.core.errors import InputError
from app.fairness.engine.inputs import PredictionSet
from app.settings import Settings

_HEADER_SHOWN = 20  # header names quoted in a missing-column message


def parse_predictions_csv(source: IO[bytes], attributes: list[str], settings: Settings) -> PredictionSet:
    errors = ErrorList(settings.max_reported_errors)
    labels, scores = array("b"), array("d")
    groups: dict[str, list[str | None]] = {a: [] for a in attributes}
    names: dict[str, str] = {}  # one object per distinct group name
    ids: dict[str, int] = {}  # sample id -> row
    limits = CsvLimits.from_settings(settings)
    with read_csv(source, limits, what="the predictions file", file="predictions") as table:
        header = table.header
        _check_columns(header, ["y_true", "y_score", *attributes])
        index = {name: i for i, name in enumerate(header)}
        label_at, score_at, id_at = index["y_true"], index["y_score"], index.get("sample_id")
        group_at = [(a, index[a]) for a in attributes]
        for row, cells in table.rows:
            if len(cells) != len(header):
                errors.add({"row": row, "message": f"has {len(cells)} cells, the header has {len(header)}"})
                continue
            label = cells[label_at].strip()
            if label not in ("0", "1"):
                errors.add({"row": row, "column": "y_true", "message": f"{label!r} is not 0 or 1"})
            labels.append(label == "1")
            try:
                score = float(cells[score_at])
            except ValueError:
                score = math.nan
            if not (math.isfinite(score) and 0.0 <= score <= 1.0):
                errors.add(
                    {"row": row, "column": "y_score", "message": f"{cells[score_at]!r} is not a probability in [0, 1]"}
                )
            scores.append(score)
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
    if len(labels) < 2:
        raise InputError("an audit needs at least two rows of predictions", status=422)
    for a, values in groups.items():
        observed = {v for v in values if v is not None}
        if len(observed) < 2:
            raise InputError(
                "every sensitive attribute needs at least two groups to compare",
                [{"column": a, "message": f"only {sorted(observed) or 'missing values'} found"}],
            )
    return PredictionSet(
        y_true=np.frombuffer(labels, dtype=np.int8).astype(np.int64),
        exit_scores=np.frombuffer(scores, dtype=np.float64)[:, None].copy(),
        groups={a: _objects(values) for a, values in groups.items()},
        threshold=0.5,
        sample_ids=_objects(list(ids)) if id_at is not None else None,
    )


def _check_columns(header: list[str], required: list[str]) -> None:
    present = set(header)
    missing = [c for c in required if c not in present]
    if missing:
        shown = header[:_HEADER_SHOWN] + (["…"] if len(header) > _HEADER_SHOWN else [])
        raise InputError(
            "the predictions file is missing required columns",
            [{"column": c, "message": f"column {c!r} not found; header is {shown}"} for c in missing],
        )


def _objects(values: list[str | None]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
