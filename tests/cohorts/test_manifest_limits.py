"""Manifest sizes are bounded before they are read, every check is linear, and error lists are capped."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from cohort_helpers import png, write_files

from app.cohorts.config import CohortConfig
from app.cohorts.manifest import ParsedManifest, parse_manifest
from app.core.errors import InputError
from app.settings import Settings

GENERIC = {"name": "c", "image_column": "image", "label_column": "label"}


def parse(tmp_path: Path, manifest: str | bytes, images: list[str], **limits: Any) -> ParsedManifest:
    root = write_files(tmp_path / "root", {name: png() for name in images})
    (root / "manifest.csv").write_bytes(manifest.encode() if isinstance(manifest, str) else manifest)
    settings = Settings(environment="test", **limits)
    return parse_manifest(root / "manifest.csv", CohortConfig.model_validate(GENERIC), settings=settings)


def refused(tmp_path: Path, manifest: str | bytes, images: list[str], **limits: Any) -> InputError:
    with pytest.raises(InputError) as info:
        parse(tmp_path, manifest, images, **limits)
    return info.value


def test_header_over_the_column_limit_is_413(tmp_path: Path) -> None:
    header = "image,label," + ",".join(f"c{i}" for i in range(1000))
    error = refused(tmp_path, f"{header}\na.png,1{',' * 1000}\n", ["a.png"])
    assert error.status == 413
    assert "1,002 columns, above the limit of 1,000" in error.detail


def test_header_over_the_byte_limit_is_refused_before_any_row(tmp_path: Path) -> None:
    """A one-line header of 200 KB (an attack used 100 MB) stops at the limit, whatever follows."""
    header = "image,label," + "x" * 200_000
    error = refused(tmp_path, f'{header}\nnot,even,valid,"csv\n', ["a.png"])
    assert error.status == 413
    assert error.errors == [{"file": "manifest.csv", "row": 1, "message": "the header row is longer than 65,536 bytes"}]


def test_wide_header_and_repeated_columns_are_checked_in_linear_time(tmp_path: Path) -> None:
    """50,000 columns took the quadratic duplicate check about a minute (100,000: 171 s); now well under
    a second. The bound only catches a return of the quadratic check."""
    columns = [f"c{i}" for i in range(50_000)]
    header = ",".join(["image", "label", *columns, "c7", "c9"])
    started = time.monotonic()
    error = refused(tmp_path, f"{header}\n", ["a.png"], csv_max_columns=100_000, csv_max_header_bytes=10_000_000)
    assert time.monotonic() - started < 10
    assert error.detail == "the manifest header repeats columns"
    assert error.errors == [
        {"column": "c7", "message": "appears more than once in the header"},
        {"column": "c9", "message": "appears more than once in the header"},
    ]


def test_missing_columns_quote_a_bounded_header(tmp_path: Path) -> None:
    header = ",".join(f"c{i}" for i in range(500))
    error = refused(tmp_path, f"{header}\n{',' * 499}x\n", ["a.png"])
    assert [e["column"] for e in error.errors] == ["image", "label"]
    assert error.errors[0]["message"].endswith(
        "(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, …)"
    )


def test_cell_over_pythons_csv_limit_is_named_by_row_and_column(tmp_path: Path) -> None:
    """131,073 characters passed Python's csv field limit: a 500 in the header, an unnamed 422 in a row."""
    cell = "x" * 131_073
    error = refused(tmp_path, f"image,label,note\na.png,1,ok\nb.png,0,{cell}\n", ["a.png", "b.png"])
    assert error.status == 413
    assert error.errors == [{"row": 3, "column": "note", "message": "131,073 characters"}]
    assert "a cell over 65,536 characters" in error.detail


def test_cell_spanning_lines_counts_as_one_row(tmp_path: Path) -> None:
    """A quoted cell may hold line breaks; its row is still one row, and later rows keep their numbers."""
    error = refused(
        tmp_path, 'image,label,note\na.png,1,"two\nlines"\nb.png,x,\n', ["a.png", "b.png"], csv_max_cell_chars=5
    )
    assert error.errors == [{"row": 2, "column": "note", "message": "9 characters"}]
    error = refused(tmp_path / "ok", 'image,label,note\na.png,1,"two\nlines"\nb.png,x,\n', ["a.png", "b.png"])
    assert [(e["row"], e["column"]) for e in error.errors] == [(3, "label")]


def test_row_over_the_byte_limit_is_413_before_it_is_parsed(tmp_path: Path) -> None:
    manifest = "image,label,note\na.png,1,ok\nb.png,0," + "é" * 600 + "\n"  # 1,200 bytes in 600 characters
    error = refused(tmp_path, manifest, ["a.png", "b.png"], csv_max_row_bytes=1000)
    assert error.status == 413
    assert error.errors == [{"file": "manifest.csv", "row": 3, "message": "longer than 1,000 bytes"}]


def test_rows_over_the_limit_are_413(tmp_path: Path) -> None:
    manifest = "image,label\n" + "".join(f"{i}.png,1\n\n" for i in range(6))  # blank rows do not count
    error = refused(tmp_path, manifest, [f"{i}.png" for i in range(6)], csv_max_rows=5)
    assert error.status == 413
    assert error.errors == [{"file": "manifest.csv", "row": 12, "message": "at most 5 data rows are accepted"}]
    assert len(parse(tmp_path / "ok", manifest, [f"{i}.png" for i in range(6)], csv_max_rows=6).items) == 6


def test_error_list_is_capped_and_counts_the_rest(tmp_path: Path) -> None:
    """A million rows naming missing images gave a 126 MB response; the list now stops at the cap."""
    manifest = "image,label\n" + "".join(f"gone{i}.png,1\n" for i in range(1000))
    error = refused(tmp_path, manifest, ["a.png"], max_reported_errors=10)
    assert error.status == 422
    assert error.detail == "the manifest has 1,000 problem(s) (the first 10 listed)"
    assert len(error.errors) == 11
    assert [e["row"] for e in error.errors[:10]] == list(range(2, 12))
    assert error.errors[-1] == {"message": "and 990 more problem(s) not listed"}


def test_old_mac_line_endings_and_a_byte_order_mark(tmp_path: Path) -> None:
    manifest = b"\xef\xbb\xbfimage,label\ra.png,1\rb.png,0\r"
    parsed = parse(tmp_path, manifest, ["a.png", "b.png"])
    assert [(i.image, i.label, i.row) for i in parsed.items] == [("a.png", 1, 2), ("b.png", 0, 3)]


def test_non_utf8_byte_is_found_past_the_first_chunk(tmp_path: Path) -> None:
    rows = "".join(f"{i}.png,1\n" for i in range(200_000))  # ~2 MB: the bad byte lies beyond one read
    data = ("image,label\n" + rows).encode() + b"z.png,\xff\n"
    error = refused(tmp_path, data, ["a.png"])
    assert error.status == 400
    assert error.errors[0]["row"] == 200_002
    assert f"byte 0xff at offset {len(data) - 2}" in error.errors[0]["message"]


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("img/a.png", "img/a.png"),
        ("./img//a.png", "img/a.png"),
        ("img\\a.png", "img/a.png"),
        ("img/a", "img/a.png"),
        ("img/B", "img/B.JPG"),
        ("a.png", "img/a.png"),  # the only file of that name, in a subfolder
        ("c.png", None),  # two files share the name: ambiguous
        ("/img/a.png", None),
        ("img/../img/a.png", None),
        ("", None),
    ],
)
def test_image_references_resolve_without_pathlib(tmp_path: Path, ref: str, expected: str | None) -> None:
    """References are resolved with string operations (pathlib cost more than the rest of a row)."""
    from app.cohorts.manifest import _FileIndex

    index = _FileIndex(["img/a.png", "img/B.JPG", "x/c.png", "y/c.png"])
    assert index.resolve(ref) == expected
