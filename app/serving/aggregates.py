"""Live monitoring aggregates: counters kept up to date as predictions and outcomes are written, in
the same transaction as the row, so a monitoring read sums a few thousand counters instead of
reloading every prediction.

Cells (``MonitoringCell``), per model × attribute × group (``overall``/``all`` for everyone; a
missing demographic value joins no group):

* per prediction: ``n``, ``exit:k`` (the exit that decided), ``score:b`` (the served probability in
  one of ``N_SCORE_BINS`` equal-width bins; drift);
* per outcome of a binary model: ``tp``/``fp``/``tn``/``fn`` at the frozen operating threshold (the
  stored label), and ``pos:b``/``neg:b``, the score histogram of each class (AUC and PF);
* per outcome of a multiclass model: ``o`` (one outcome) and ``m:y:k``, its cell of the confusion
  matrix (true class index ``y``, predicted ``k``): one-vs-rest counts of every class follow from it,
  so an outcome costs two cells whatever the number of classes;
* per outcome of a multilabel model: ``o``, and for each finding ``f`` whose truth is known the
  binary cells above prefixed ``c<f>:`` (``c2:tp``, ``c2:pos:41``), at the finding's own threshold.

Each is counted in up to three buckets, one per kind of window, so that every read sums a bounded
number of rows whatever the number of predictions: all time (``day`` = ``block`` = ``ALL``); its UTC
day (``block`` = ``ALL``: "the last N days"); and, for outcomes, its block of ``BLOCK`` outcome
numbers (``day`` = ``ALL``: "the last K outcomes"). A day × block bucket would multiply the two, so
a window is either days or outcomes, not both.

"The last K outcomes": every outcome takes the model's next sequence number
(``model_versions.last_outcome_seq``, incremented in the outcome's transaction; a correction is a
new outcome and moves the prediction's counts from its old block to the new one). The window's whole
blocks are summed from the cells; the part of its oldest block that falls inside the window (fewer
than ``BLOCK`` outcomes) is counted from the prediction rows by ``(model_version_id, outcome_seq)``.

Every change is ``INSERT … ON CONFLICT DO UPDATE SET count = count + excluded.count`` (SQLite and
PostgreSQL alike), keys in sorted order so concurrent PostgreSQL transactions lock them in one order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from functools import cache
from itertools import product
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Connection, Insert, Table, update
from sqlalchemy.dialects import postgresql, sqlite

from app.serving.models import ModelVersion, MonitoringCell, Prediction

N_SCORE_BINS = 100
BLOCK = 1024
ALL = -1  # a bucket over every day, or every block
OVERALL, EVERYONE = "overall", "all"
_EPOCH = date(1970, 1, 1)
_CONFUSION = {(1, 1): "tp", (0, 1): "fp", (0, 0): "tn", (1, 0): "fn"}  # (outcome, label)
OUTCOME, MATRIX = "o", "m:"  # multiclass and multilabel outcome cells


class Key(NamedTuple):
    model_version_id: str
    day: int
    block: int
    attribute: str
    group: str
    cell: str


def day_of(at: datetime) -> int:
    return (at.astimezone(UTC).date() - _EPOCH).days


def score_bin(probability: float) -> int:
    return min(max(int(probability * N_SCORE_BINS), 0), N_SCORE_BINS - 1)


def memberships(demographics: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The (attribute, group) pairs a prediction counts in: everyone, and each known attribute value."""
    known = sorted((a, str(v)) for a, v in (demographics or {}).items() if v is not None)
    return [(OVERALL, EVERYONE), *known]


def prediction_counts(rows: Iterable[Mapping[str, Any]]) -> Counter[Key]:
    """Cells of newly stored prediction rows (column dicts, as the group-commit writer holds them)."""
    counts: Counter[Key] = Counter()
    for row in rows:
        buckets = ((day_of(row["created_at"]), ALL), (ALL, ALL))
        cells = ("n", f"exit:{row['exit_index']}", f"score:{score_bin(row['probability'])}")
        for attribute, group in memberships(row["demographics"]):
            for (day, block), cell in product(buckets, cells):
                counts[Key(row["model_version_id"], day, block, attribute, group, cell)] += 1
    return counts


def outcome_counts(
    model_version_id: str,
    *,
    at: datetime,
    seq: int,
    probability: float,
    label: int,
    outcome: int,
    demographics: Mapping[str, Any] | None,
    sign: int = 1,
    output: Mapping[str, Any] | None = None,
    outcome_findings: Sequence[int | None] | None = None,
) -> Counter[Key]:
    """Cells of one outcome (``sign`` -1 takes back a corrected one); ``output`` and
    ``outcome_findings`` are the row's (``None`` for a binary model)."""
    cells = _outcome_cells(probability, label, outcome, output, outcome_findings)
    buckets = ((day_of(at), ALL), (ALL, seq // BLOCK), (ALL, ALL))
    counts: Counter[Key] = Counter()
    for attribute, group in memberships(demographics):
        for (day, block), cell in product(buckets, cells):
            counts[Key(model_version_id, day, block, attribute, group, cell)] += sign
    return counts


def _outcome_cells(
    probability: float,
    label: int,
    outcome: int,
    output: Mapping[str, Any] | None,
    outcome_findings: Sequence[int | None] | None,
) -> list[str]:
    if output is None:
        return _binary_cells("", probability, label, outcome)
    if output["task"] == "multiclass":
        return [OUTCOME, f"{MATRIX}{outcome}:{label}"]
    assert outcome_findings is not None  # a multilabel outcome is its findings
    cells = [OUTCOME]
    for f, (truth, p, decision) in enumerate(
        zip(outcome_findings, output["probabilities"], output["decisions"], strict=True)
    ):
        if truth is not None:
            cells += _binary_cells(f"c{f}:", p, decision, truth)
    return cells


def _binary_cells(prefix: str, probability: float, label: int, outcome: int) -> list[str]:
    kind = "pos" if outcome else "neg"
    return [prefix + _CONFUSION[outcome, label], f"{prefix}{kind}:{score_bin(probability)}"]


def is_class_cell(cell: str) -> bool:
    """A multiclass or multilabel outcome cell (``o``, ``m:…``, ``c<f>:…``)."""
    return cell == OUTCOME or cell.startswith((MATRIX, "c"))


def is_prediction_cell(cell: str) -> bool:
    return cell == "n" or cell.startswith(("exit:", "score:"))


class OutcomeRow(Protocol):
    """What counting an outcome reads of a prediction row (an ORM ``Prediction`` or a selected row)."""

    model_version_id: str
    probability: float
    label: int
    demographics: dict[str, Any] | None
    outcome: int | None
    outcome_at: datetime | None
    outcome_seq: int | None
    output: dict[str, Any] | None
    outcome_findings: list[Any] | None


OUTCOME_COLUMNS = tuple(getattr(Prediction, name) for name in OutcomeRow.__annotations__)


def row_outcome_counts(row: OutcomeRow, sign: int = 1) -> Counter[Key]:
    """Cells of the outcome a prediction row holds now (none without one)."""
    if row.outcome is None or row.outcome_at is None or row.outcome_seq is None:
        return Counter()
    return outcome_counts(
        row.model_version_id,
        at=row.outcome_at,
        seq=row.outcome_seq,
        probability=row.probability,
        label=row.label,
        outcome=row.outcome,
        demographics=row.demographics,
        sign=sign,
        output=row.output,
        outcome_findings=row.outcome_findings,
    )


def add(conn: Connection, counts: Mapping[Key, int]) -> None:
    """Add ``counts`` to the stored cells in the caller's transaction."""
    rows = [{**key._asdict(), "count": n} for key, n in sorted(counts.items()) if n]
    if rows:
        conn.execute(_upsert(conn.dialect.name), rows)


@cache
def _upsert(dialect_name: str) -> Insert:
    """The increment statement, built once per dialect (building it costs more than running it)."""
    table: Table = MonitoringCell.__table__  # type: ignore[assignment]
    statement = (postgresql if dialect_name == "postgresql" else sqlite).insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(Key._fields), set_={"count": table.c.count + statement.excluded.count}
    )


def count_predictions(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """The group-commit writer's hook for ``Prediction`` rows (registered by ``app.main``)."""
    add(conn, prediction_counts(rows))


def next_outcome_seq(conn: Connection, model_version_id: str) -> int:
    """The model's next outcome sequence number; the row stays locked until the transaction ends."""
    seq = conn.execute(
        update(ModelVersion)
        .where(ModelVersion.id == model_version_id)
        .values(last_outcome_seq=ModelVersion.last_outcome_seq + 1)
        .returning(ModelVersion.last_outcome_seq)
    ).scalar_one()
    return int(seq)
