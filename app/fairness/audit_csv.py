"""Parsing an uploaded predictions CSV (``POST /v1/audits``) into a ``PredictionSet``.

Columns: ``y_true`` (0/1), ``y_score`` (probability of the positive class, in [0, 1]), one column per
sensitive attribute named in the config, and optionally ``sample_id`` (needed to pair this audit
with another in a comparison). Blank attribute cells are missing values (they join no group).
Every bad cell is reported, by row and column, in one error.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np

from app.core.errors import InputError
from app.fairness.engine.inputs import PredictionSet

MAX_REPORTED_ERRORS = 200


def _read_rows(raw: bytes) -> tuple[list[str], list[list[str]]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            "the predictions file is not UTF-8 text",
            [{"column": None, "message": f"undecodable byte at offset {exc.start}"}],
        ) from None
    rows = list(csv.reader(io.StringIO(text)))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise InputError("the predictions file is empty")
    return [h.strip() for h in rows[0]], rows[1:]


def parse_predictions_csv(raw: bytes, attributes: list[str]) -> PredictionSet:
    header, rows = _read_rows(raw)
    required = ["y_true", "y_score", *attributes]
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(
            "the predictions file is missing required columns",
            [{"column": c, "message": f"column {c!r} not found; header is {header}"} for c in missing],
        )
    if len(rows) < 2:
        raise InputError("an audit needs at least two rows of predictions", status=422)
    index = {name: header.index(name) for name in header}
    errors: list[dict[str, Any]] = []
    y_true = np.zeros(len(rows), dtype=np.int64)
    y_score = np.zeros(len(rows), dtype=np.float64)
    groups = {a: np.empty(len(rows), dtype=object) for a in attributes}
    for i, row in enumerate(rows):
        line = i + 2  # the header is line 1
        if len(row) != len(header):
            errors.append({"row": line, "message": f"has {len(row)} cells, the header has {len(header)}"})
            continue
        label = row[index["y_true"]].strip()
        if label not in ("0", "1"):
            errors.append({"row": line, "column": "y_true", "message": f"{label!r} is not 0 or 1"})
        else:
            y_true[i] = int(label)
        try:
            score = float(row[index["y_score"]])
        except ValueError:
            score = math.nan
        if not (math.isfinite(score) and 0.0 <= score <= 1.0):
            errors.append(
                {
                    "row": line,
                    "column": "y_score",
                    "message": f"{row[index['y_score']]!r} is not a probability in [0, 1]",
                }
            )
        else:
            y_score[i] = score
        for a in attributes:
            value = row[index[a]].strip()
            groups[a][i] = value or None
    if errors:
        shown = errors[:MAX_REPORTED_ERRORS]
        more = f" ({len(errors)} problems, first {len(shown)} listed)" if len(errors) > len(shown) else ""
        raise InputError(f"the predictions file has invalid cells{more}", shown)
    ids = None
    if "sample_id" in index:
        ids = np.array([row[index["sample_id"]].strip() for row in rows], dtype=object)
        if len(set(ids)) != len(ids):
            raise InputError("sample_id values must be unique", [{"column": "sample_id", "message": "duplicates"}])
    for a in attributes:
        observed = {v for v in groups[a] if v is not None}
        if len(observed) < 2:
            raise InputError(
                "every sensitive attribute needs at least two groups to compare",
                [{"column": a, "message": f"only {sorted(observed) or 'missing values'} found"}],
            )
    return PredictionSet(y_true=y_true, exit_scores=y_score[:, None], groups=groups, threshold=0.5, sample_ids=ids)
