"""An evaluation's per-sample predictions as CSV (``GET /v1/evaluations/{id}/predictions.csv``), streamed
from its stored ``predictions.npz`` in bounded memory, so an auditor can re-analyse them with their own
tools.

Columns, in this order: ``sample_id``; ``patient`` (a hash of the sample's patient, blank when the
predictions carry no patient); one column per group attribute (blank: missing); ``label``;
``score_exit_0`` … ``score_exit_k`` (one per exit, the last is the final head); ``exit_taken`` (the exit
the early-exit policy served; the final head for single-exit models); ``policy_score`` (the score at that
exit); ``threshold`` (the operating threshold that score was compared with: the same on every row, except
in pooled out-of-fold predictions, where each row has its own fold model's); and, for pooled out-of-fold
predictions, ``seed`` and ``fold`` (from ``s{seed}/f{fold}``).

``patient`` is ``HMAC-SHA256(key, patient key)`` truncated to 16 hex digits, keyed by the evaluation's
cohort id (else its own id): rows of one patient share it, two evaluations of one cohort agree on it, and
the cohort's own patient ids (a manifest's raw ids) never leave the server.

Bounded memory: an ``.npz`` is a zip of ``.npy`` members; each member is read as a stream (its header,
then ``CHUNK_ROWS`` rows at a time through the zip's inflater), never loaded whole. Values are written as
stored, not escaped for spreadsheets: a re-analysis must read back exactly what was evaluated.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import re
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import numpy as np
from numpy.lib import format as npy

from app.fairness.storage import PREDICTIONS_FILE

CHUNK_ROWS = 4096
_FOLD = re.compile(r"^s(\d+)/f(\d+)$")


class _Column:
    """One ``.npy`` member of the archive read ``rows`` at a time; a Fortran-ordered matrix (column-major)
    is read as one stream per column; a scalar (a float threshold) is repeated on every row."""

    def __init__(self, stack: ExitStack, archive: zipfile.ZipFile, name: str) -> None:
        first = stack.enter_context(archive.open(f"{name}.npy"))
        shape, fortran, self.dtype = _header(first)
        if self.dtype.hasobject:
            raise ValueError(f"{name} holds Python objects; stored predictions never do")
        self.n = int(shape[0]) if shape else 1
        self.constant = None if shape else _read(first, self.dtype, 1)
        self.width = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
        self.matrix = len(shape) > 1
        if fortran and self.width > 1:
            self.streams = [first] + [stack.enter_context(archive.open(f"{name}.npy")) for _ in range(self.width - 1)]
            for j, stream in enumerate(self.streams):
                if j:
                    _header(stream)
                _skip(stream, j * self.n * self.dtype.itemsize)
        else:
            self.streams = [first]

    def read(self, rows: int) -> np.ndarray:
        if self.constant is not None:
            return np.repeat(self.constant, rows)
        if len(self.streams) > 1:
            return np.column_stack([_read(s, self.dtype, rows) for s in self.streams])
        values = _read(self.streams[0], self.dtype, rows * self.width)
        return values.reshape(rows, self.width) if self.matrix else values


def _header(stream: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = npy.read_magic(stream)
    read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
    shape, fortran, dtype = read(stream)
    return tuple(shape), bool(fortran), np.dtype(dtype)


def _skip(stream: IO[bytes], size: int) -> None:
    while size > 0:
        got = len(stream.read(min(size, 1 << 20)))
        if not got:
            raise ValueError("the stored predictions are truncated")
        size -= got


def _read(stream: IO[bytes], dtype: np.dtype, count: int) -> np.ndarray:
    data = stream.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise ValueError("the stored predictions are truncated")
    return np.frombuffer(data, dtype=dtype, count=count)


def patient_hash(key: str, cluster: str) -> str:
    return hmac.new(key.encode(), cluster.encode(), hashlib.sha256).hexdigest()[:16]


class PredictionsCsv:
    """The CSV of one stored predictions file; opening checks the file, iterating streams it and closes."""

    def __init__(self, folder: Path, patient_key: str) -> None:
        self.key = patient_key
        self._stack = ExitStack()
        try:
            archive = self._stack.enter_context(zipfile.ZipFile(folder / PREDICTIONS_FILE))
            members = {name.removesuffix(".npy") for name in archive.namelist()}
            self.columns = {name: _Column(self._stack, archive, name) for name in sorted(members)}
        except BaseException:
            self._stack.close()
            raise
        self.groups = [name.removeprefix("group:") for name in sorted(members) if name.startswith("group:")]
        self.n = self.columns["y_true"].n
        self.n_exits = self.columns["exit_scores"].width

    def header(self) -> list[str]:
        folds = ["seed", "fold"] if "folds" in self.columns else []
        scores = [f"score_exit_{e}" for e in range(self.n_exits)]
        return [
            "sample_id",
            "patient",
            *self.groups,
            "label",
            *scores,
            "exit_taken",
            "policy_score",
            "threshold",
            *folds,
        ]

    def __iter__(self) -> Iterator[bytes]:
        with self._stack:
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(self.header())
            for start in range(0, self.n, CHUNK_ROWS):
                writer.writerows(self._rows(min(CHUNK_ROWS, self.n - start)))
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
            if self.n == 0:
                yield buffer.getvalue().encode()

    def _rows(self, rows: int) -> Iterator[list[object]]:
        def text(name: str) -> list[str]:
            return [str(v) for v in self.columns[name].read(rows)] if name in self.columns else [""] * rows

        ids, clusters = text("sample_ids"), text("clusters")
        patients = [patient_hash(self.key, c) if c else "" for c in clusters]
        groups = [
            [
                "" if gone else str(value)
                for value, gone in zip(
                    self.columns[f"group:{g}"].read(rows), self.columns[f"missing:{g}"].read(rows), strict=True
                )
            ]
            for g in self.groups
        ]
        labels = self.columns["y_true"].read(rows)
        scores = self.columns["exit_scores"].read(rows)
        taken = (
            self.columns["exit_index"].read(rows).astype(np.int64)
            if "exit_index" in self.columns
            else np.full(rows, self.n_exits - 1, dtype=np.int64)
        )
        policy = scores[np.arange(rows), taken]
        thresholds = self.columns["threshold"].read(rows)
        folds = [_seed_and_fold(f) for f in text("folds")] if "folds" in self.columns else None
        for i in range(rows):
            row: list[object] = [ids[i], patients[i], *(g[i] for g in groups), int(labels[i])]
            row += [repr(float(s)) for s in scores[i]]
            row += [int(taken[i]), repr(float(policy[i])), repr(float(thresholds[i]))]
            if folds is not None:
                row += folds[i]
            yield row


def _seed_and_fold(label: str) -> list[str]:
    """``s{seed}/f{fold}`` as its two numbers; another label is kept whole as the fold."""
    match = _FOLD.match(label)
    return [match.group(1), match.group(2)] if match else ["", label]
