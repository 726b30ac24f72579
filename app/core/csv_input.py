"""Reading an untrusted CSV upload (a cohort manifest, an audit's predictions) with every size bounded.

The file is streamed from a binary file object one line at a time, so memory holds one row however
large the upload, and each limit is checked before the work it bounds:

- the header row: at most ``max_header_bytes`` (UTF-8) and ``max_columns`` columns, checked before
  any data row is read; a column name given twice is refused (found in one pass);
- a row: at most ``max_row_bytes``, counted while its lines are read, before it is parsed (a quoted
  cell may span lines; its row is one row, as in a spreadsheet);
- a cell: at most ``max_cell_chars`` characters, named by row and column;
- at most ``max_rows`` data rows.

Size limits answer 413, malformed text 400. Rows are numbered as a spreadsheet shows them (the header
is row 1); blank rows are counted but not returned. The text is UTF-8 (a byte-order mark is
allowed); the first byte that is not is named by its line and offset. Python's ``csv`` has its own
cell limit (131,072 characters by default), which would surface as an unnamed error; it is raised to
the row limit, so the limits above are the ones a user meets.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from app.core.errors import InputError
from app.settings import Settings

_DECODE_CHUNK = 1 << 20


@dataclass(frozen=True)
class CsvLimits:
    max_header_bytes: int
    max_columns: int
    max_row_bytes: int
    max_cell_chars: int
    max_rows: int

    @classmethod
    def from_settings(cls, settings: Settings) -> CsvLimits:
        return cls(
            max_header_bytes=settings.csv_max_header_bytes,
            max_columns=settings.csv_max_columns,
            max_row_bytes=settings.csv_max_row_bytes,
            max_cell_chars=settings.csv_max_cell_chars,
            max_rows=settings.csv_max_rows,
        )


@dataclass
class CsvTable:
    header: list[str]  # stripped column names, unique
    rows: Iterator[tuple[int, list[str]]]  # (row number, cells) of every non-blank data row


class _RowTooLarge(Exception):
    pass


class _Lines:
    """Feeds ``csv.reader`` one line at a time, refusing a row once its lines pass ``limit`` bytes."""

    def __init__(self, text: io.TextIOWrapper, limit: int) -> None:
        self.text = text
        self.limit = limit
        self.used = 0  # bytes of the row being read

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self.text.readline(self.limit - self.used + 1)  # characters: at least one byte each
        if not line:
            raise StopIteration
        self.used += len(line) if line.isascii() else len(line.encode("utf-8"))  # isascii() is O(1)
        if self.used > self.limit:
            raise _RowTooLarge
        return line


@contextmanager
def read_csv(source: IO[bytes], limits: CsvLimits, *, what: str, file: str) -> Iterator[CsvTable]:
    """Open ``source`` as a CSV table. ``what`` names the file in messages ("the manifest"), ``file``
    is its name in the errors list. Errors surface as ``InputError`` while the table is read."""
    csv.field_size_limit(max(csv.field_size_limit(), limits.max_row_bytes))
    text = io.TextIOWrapper(source, encoding="utf-8-sig", newline="")
    lines = _Lines(text, limits.max_header_bytes)
    reader = csv.reader(lines)
    try:
        header = _read_header(reader, lines, limits, what, file)
        yield CsvTable(header, _rows(reader, lines, header, limits, what, file))
    except UnicodeDecodeError:
        raise _not_utf8(source, what, file) from None
    finally:
        text.detach()  # the caller owns ``source``


def _read_header(reader: Iterator[list[str]], lines: _Lines, limits: CsvLimits, what: str, file: str) -> list[str]:
    try:
        cells = next(reader)
    except StopIteration:
        raise InputError(f"{what} is empty", [{"file": file, "message": "no header row"}]) from None
    except _RowTooLarge:
        raise InputError(
            f"{what} has a header row over {limits.max_header_bytes:,} bytes",
            [{"file": file, "row": 1, "message": f"the header row is longer than {limits.max_header_bytes:,} bytes"}],
            status=413,
        ) from None
    except csv.Error as exc:
        raise InputError(f"{what} is not valid CSV", [{"file": file, "row": 1, "message": str(exc)}], 400) from None
    if len(cells) > limits.max_columns:
        raise InputError(
            f"{what} has {len(cells):,} columns, above the limit of {limits.max_columns:,}",
            [{"file": file, "row": 1, "message": f"at most {limits.max_columns:,} columns are accepted"}],
            status=413,
        )
    header = [name.strip() for name in cells]
    repeated = [name for name, n in Counter(header).items() if n > 1]
    if repeated:
        raise InputError(
            f"{what} header repeats columns",
            [{"column": name, "message": "appears more than once in the header"} for name in sorted(repeated)],
        )
    lines.limit = limits.max_row_bytes
    return header


def _rows(
    reader: Iterator[list[str]], lines: _Lines, header: list[str], limits: CsvLimits, what: str, file: str
) -> Iterator[tuple[int, list[str]]]:
    row, data_rows = 1, 0
    while True:
        lines.used = 0
        try:
            cells = next(reader)
        except StopIteration:
            return
        except _RowTooLarge:
            raise InputError(
                f"{what} has a row over {limits.max_row_bytes:,} bytes",
                [{"file": file, "row": row + 1, "message": f"longer than {limits.max_row_bytes:,} bytes"}],
                status=413,
            ) from None
        except csv.Error as exc:
            raise InputError(
                f"{what} is not valid CSV", [{"file": file, "row": row + 1, "message": str(exc)}], 400
            ) from None
        row += 1
        if not any(cell.strip() for cell in cells):
            continue
        data_rows += 1
        if data_rows > limits.max_rows:
            raise InputError(
                f"{what} has more than {limits.max_rows:,} rows",
                [{"file": file, "row": row, "message": f"at most {limits.max_rows:,} data rows are accepted"}],
                status=413,
            )
        if lines.used > limits.max_cell_chars:  # only a row this long can hold a cell over the limit
            _check_cells(cells, row, header, limits, what)
        yield row, cells


def _check_cells(cells: list[str], row: int, header: list[str], limits: CsvLimits, what: str) -> None:
    for i, cell in enumerate(cells):
        if len(cell) > limits.max_cell_chars:
            column = header[i] if i < len(header) else f"#{i + 1}"
            raise InputError(
                f"{what} has a cell over {limits.max_cell_chars:,} characters",
                [{"row": row, "column": column, "message": f"{len(cell):,} characters"}],
                status=413,
            )


def _not_utf8(source: IO[bytes], what: str, file: str) -> InputError:
    """Find the first byte that is not UTF-8 (a second, streaming pass: this is the rare path)."""
    source.seek(0)
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = newlines = 0
    while True:
        chunk = source.read(_DECODE_CHUNK)
        try:
            decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            start = offset - (len(exc.object) - len(chunk)) + exc.start  # the decoder may hold earlier bytes
            line = newlines + exc.object.count(b"\n", 0, exc.start) + 1
            message = f"byte 0x{exc.object[exc.start]:02x} at offset {start} is not valid UTF-8; save it as UTF-8"
            return InputError(f"{what} is not UTF-8", [{"file": file, "row": line, "message": message}], status=400)
        if not chunk:
            return InputError(f"{what} is not UTF-8", [{"file": file, "message": "not valid UTF-8"}], status=400)
        newlines += chunk.count(b"\n")
        offset += len(chunk)
