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

Multi-class predictions replace the binary columns with ``label`` (the true class's name),
``score_exit_<e>_<class>`` per exit and class, ``exit_taken``, ``score_<class>`` (the probabilities at the
exit taken), ``threshold_<class>`` (only with per-class thresholds) and ``predicted`` (the class decided:
argmax, or argmax of p / class threshold). Multi-label predictions: ``label_<finding>`` (1, 0, or blank:
unknown), ``score_exit_<e>_<finding>``, ``exit_taken``, then per finding ``score_<finding>``,
``threshold_<finding>`` and ``decision_<finding>`` (1 when the score reaches the threshold).

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
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO

import numpy as np
from numpy.lib import format as npy

from app.fairness.storage import PREDICTIONS_FILE, stored_task

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
            task = stored_task(self.columns["task"].read(1)[0] if "task" in self.columns else None)
            bodies: dict[str, type[_Binary | _Multiclass | _Multilabel]] = {
                "binary": _Binary,
                "multiclass": _Multiclass,
                "multilabel": _Multilabel,
            }
            self.body = bodies[task](self.columns)
        except BaseException:
            self._stack.close()
            raise
        self.groups = [name.removeprefix("group:") for name in sorted(members) if name.startswith("group:")]
        self.n = self.columns["y_true"].n

    def header(self) -> list[str]:
        folds = ["seed", "fold"] if "folds" in self.columns else []
        return ["sample_id", "patient", *self.groups, *self.body.header(), *folds]

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
        body = self.body.rows(rows)
        folds = [_seed_and_fold(f) for f in text("folds")] if "folds" in self.columns else None
        for i, cells in enumerate(body):
            row: list[object] = [ids[i], patients[i], *(g[i] for g in groups), *cells]
            if folds is not None:
                row += folds[i]
            yield row


class _Body(ABC):
    """The task's columns of each row: labels, every exit's scores, the exit taken and the decision."""

    def __init__(self, columns: dict[str, _Column], width: int) -> None:
        self.columns = columns
        self.n_exits = columns["exit_probs" if "exit_probs" in columns else "exit_scores"].width // width

    @abstractmethod
    def header(self) -> list[str]: ...

    @abstractmethod
    def rows(self, rows: int) -> list[list[object]]: ...

    def taken(self, rows: int) -> np.ndarray:
        if "exit_index" in self.columns:
            return self.columns["exit_index"].read(rows).astype(np.int64)
        return np.full(rows, self.n_exits - 1, dtype=np.int64)


class _Binary(_Body):
    def __init__(self, columns: dict[str, _Column]) -> None:
        super().__init__(columns, 1)

    def header(self) -> list[str]:
        scores = [f"score_exit_{e}" for e in range(self.n_exits)]
        return ["label", *scores, "exit_taken", "policy_score", "threshold"]

    def rows(self, rows: int) -> list[list[object]]:
        labels = self.columns["y_true"].read(rows)
        scores = self.columns["exit_scores"].read(rows)
        taken = self.taken(rows)
        policy = scores[np.arange(rows), taken]
        thresholds = self.columns["threshold"].read(rows)
        return [
            [int(labels[i]), *_floats(scores[i]), int(taken[i]), *_floats([policy[i], thresholds[i]])]
            for i in range(rows)
        ]


class _Multiclass(_Body):
    """``label`` (the class name), ``score_exit_<e>_<class>``, ``exit_taken``, ``score_<class>`` (at the exit
    taken), ``threshold_<class>`` (only with class thresholds) and ``predicted`` (argmax of p / t)."""

    def __init__(self, columns: dict[str, _Column]) -> None:
        self.classes = _names(columns["classes"])
        thresholds = columns.get("class_thresholds")
        self.thresholds = None if thresholds is None else thresholds.read(thresholds.n).astype(np.float64)
        super().__init__(columns, len(self.classes))

    def header(self) -> list[str]:
        per_exit = [f"score_exit_{e}_{c}" for e in range(self.n_exits) for c in self.classes]
        thresholds = [] if self.thresholds is None else [f"threshold_{c}" for c in self.classes]
        return ["label", *per_exit, "exit_taken", *(f"score_{c}" for c in self.classes), *thresholds, "predicted"]

    def rows(self, rows: int) -> list[list[object]]:
        k = len(self.classes)
        labels = self.columns["y_true"].read(rows)
        probs = self.columns["exit_probs"].read(rows).reshape(rows, self.n_exits, k)
        taken = self.taken(rows)
        policy = probs[np.arange(rows), taken, :]
        predicted = np.argmax(policy if self.thresholds is None else policy / self.thresholds[None, :], axis=1)
        thresholds = [] if self.thresholds is None else _floats(self.thresholds)
        decided = [self.classes[int(k)] for k in predicted]
        out = []
        for i in range(rows):
            row: list[object] = [self.classes[int(labels[i])], *_floats(probs[i].ravel()), int(taken[i])]
            out.append([*row, *_floats(policy[i]), *thresholds, decided[i]])
        return out


class _Multilabel(_Body):
    """``label_<finding>`` (1, 0 or blank: unknown), ``score_exit_<e>_<finding>``, ``exit_taken``, then per
    finding ``score_<finding>`` (at the exit taken), ``threshold_<finding>`` and ``decision_<finding>``."""

    def __init__(self, columns: dict[str, _Column]) -> None:
        self.findings = _names(columns["findings"])
        super().__init__(columns, len(self.findings))

    def header(self) -> list[str]:
        labels = [f"label_{f}" for f in self.findings]
        per_exit = [f"score_exit_{e}_{f}" for e in range(self.n_exits) for f in self.findings]
        decided = [f"{what}_{f}" for f in self.findings for what in ("score", "threshold", "decision")]
        return [*labels, *per_exit, "exit_taken", *decided]

    def rows(self, rows: int) -> list[list[object]]:
        f = len(self.findings)
        labels = self.columns["y_true"].read(rows).reshape(rows, f)
        scores = self.columns["exit_scores"].read(rows).reshape(rows, self.n_exits, f)
        stored = self.columns["thresholds"]
        thresholds = (
            stored.read(rows).reshape(rows, f)
            if stored.matrix
            else np.broadcast_to(stored.read(stored.n).astype(np.float64), (rows, f))
        )
        taken = self.taken(rows)
        policy = scores[np.arange(rows), taken, :]
        out = []
        for i in range(rows):
            row: list[object] = ["" if y < 0 else int(y) for y in labels[i]]
            row += _floats(scores[i].ravel())
            row.append(int(taken[i]))
            for p, t in zip(policy[i], thresholds[i], strict=True):
                row += [repr(float(p)), repr(float(t)), int(p >= t)]
            out.append(row)
        return out


def _names(column: _Column) -> list[str]:
    """The class or finding names, a small member read whole."""
    return [str(v) for v in column.read(column.n)]


def _floats(values: Iterable[float]) -> list[str]:
    """Floats written exactly (``repr``), so a re-analysis reads back what was evaluated."""
    return [repr(float(v)) for v in values]


def _seed_and_fold(label: str) -> list[str]:
    """``s{seed}/f{fold}`` as its two numbers; another label is kept whole as the fold."""
    match = _FOLD.match(label)
    return [match.group(1), match.group(2)] if match else ["", label]
