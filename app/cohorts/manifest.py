"""Read and validate a cohort manifest CSV into normalised items, reporting every problem at once.

Rules a user can rely on (they are what error messages refer to):

- The manifest is UTF-8 (a byte-order mark is allowed), comma-separated, with a header row. Row
  numbers in errors count the header as row 1, as a spreadsheet shows them. Blank rows are skipped.
- Columns the preset or config needs must be in the header; other columns are ignored.
- Image references are paths relative to the manifest's folder (``/`` or ``\\``). A reference without
  an extension also matches ``.jpg``, ``.jpeg``, ``.png`` or ``.dcm`` (``fitzpatrick17k`` lists
  ``md5hash``, ISIC lists ``ISIC_0000000``). A reference not found at that path matches a file of
  the same name anywhere in the archive if exactly one has it (e.g. images kept in ``images/``).
- Errors (one ``InputError`` listing all): unreadable or empty CSV, missing columns, bad cells
  (labels, ages, sex, split values, skin types), duplicate image ids, images listed but missing,
  unreadable DICOM tags. Warnings: files in the archive that no row lists, rows the label policy
  drops, and (split column) patients spread over several splits.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from app.cohorts.config import SPLITS, CohortConfig, ColumnSplit, RandomSplit
from app.cohorts.dicom import DicomError
from app.cohorts.presets import Preset, RowItem, RowReader, make_preset
from app.cohorts.splits import random_split
from app.core.errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".dcm")
MAX_LISTED_WARNINGS = 100


@dataclass(frozen=True)
class ManifestItem:
    """One accepted image: what the cache and the database store for it."""

    item_id: str
    image: str  # path relative to the manifest's folder, '/'-separated
    label: int  # 0 / 1
    patient_id: str | None
    split: str  # train / val / test
    attributes: dict[str, str | None]  # every name in ParsedManifest.attribute_names; None = missing
    row: int  # manifest row (header = 1), for error messages


@dataclass(frozen=True)
class ParsedManifest:
    items: list[ManifestItem]
    attribute_names: list[str]
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def attribute_columns(self) -> dict[str, list[str | None]]:
        """Attribute values per name, in item order (for the cache and ``summary.summarize``)."""
        return {name: [item.attributes[name] for item in self.items] for name in self.attribute_names}


def parse_manifest(
    manifest_path: Path,
    config: CohortConfig,
    *,
    files: Collection[str] | None = None,
    salt: bytes | None = None,
) -> ParsedManifest:
    """Validate the manifest against the files next to it and assign splits.

    ``files``: the archive's files relative to the manifest's folder (default: found on disk).
    ``salt``: keys the patient-id hash of DICOM cohorts (default: random, see ``dicom.py``).
    """
    root = manifest_path.parent
    if files is None:
        files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    index = _FileIndex(f for f in files if f != manifest_path.name)
    preset = make_preset(config, salt if salt is not None else secrets.token_bytes(16))
    attribute_names = preset.attributes()
    _check_config_against_preset(config, preset, attribute_names)

    header, rows = _read_csv(manifest_path)
    split_column = config.split.column if isinstance(config.split, ColumnSplit) else None
    _check_columns(header, [*preset.columns(), *([split_column] if split_column else [])], config)

    errors: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    accepted: list[tuple[int, RowItem, str, str | None]] = []
    seen_ids: dict[str, int] = {}
    seen_files: dict[str, int] = {}
    dropped = 0
    for row_number, cells in rows:
        if len(cells) != len(header):
            errors.append({"row": row_number, "message": f"has {len(cells)} fields, the header has {len(header)}"})
            continue
        reader = RowReader(dict(zip(header, cells, strict=True)))
        item = preset.map_row(reader)
        split = reader.required(split_column).lower() if split_column else None
        if split_column and split and split not in SPLITS:
            reader.fail(split_column, f"split {split!r} is not one of train, val, test")
        image = index.resolve(item.image_ref) if item.image_ref else None
        if item.image_ref and image is None:
            reader.fail(preset.image_column, f"image {item.image_ref!r} is listed but missing from the archive")
        if item.item_id in seen_ids:
            reader.fail(
                preset.image_column,
                f"duplicate image id {item.item_id!r}: also on row {seen_ids[item.item_id]}",
            )
        elif image is not None and image in seen_files:
            reader.fail(preset.image_column, f"image {image!r} is also listed on row {seen_files[image]}")
        if item.item_id:
            seen_ids.setdefault(item.item_id, row_number)
        if image is not None:
            seen_files.setdefault(image, row_number)
            index.listed.add(image)
            item = _with_image_attributes(preset, item, root / image, reader)
        errors.extend({"row": row_number, "column": c, "message": m} for c, m in reader.errors)
        if reader.errors or image is None:
            continue
        if item.label is None:
            dropped += 1
            continue
        accepted.append((row_number, item, image, split))

    if errors:
        raise InputError(f"the manifest has {len(errors)} problem(s)", errors)
    if not accepted:
        raise InputError("the manifest has no usable rows", [{"message": "every row was dropped or empty"}])
    if dropped:
        warnings.append({"message": f"{dropped} row(s) dropped by the label policy (uncertain or blank)"})
    warnings.extend(index.unlisted_warnings())

    splits = _assign_splits(accepted, config, attribute_names, warnings)
    items = [
        ManifestItem(
            item_id=item.item_id,
            image=image,
            label=item.label if item.label is not None else 0,
            patient_id=item.patient_id,
            split=split,
            attributes={name: item.attributes.get(name) for name in attribute_names},
            row=row_number,
        )
        for (row_number, item, image, _), split in zip(accepted, splits, strict=True)
    ]
    return ParsedManifest(items=items, attribute_names=attribute_names, warnings=warnings)


def _check_config_against_preset(config: CohortConfig, preset: Preset, attribute_names: list[str]) -> None:
    problems = []
    clash = sorted(set(preset.attribute_names) & set(config.sensitive_attributes))
    if clash:
        problems.append(
            {
                "field": "sensitive_attributes",
                "message": f"{', '.join(clash)} already provided by the {config.preset} preset",
            }
        )
    stratify = (config.split.stratify_by or []) if isinstance(config.split, RandomSplit) else []
    unknown = [name for name in stratify if name not in attribute_names]
    if unknown:
        problems.append(
            {
                "field": "split.stratify_by",
                "message": f"{', '.join(unknown)} not among the attributes ({', '.join(attribute_names)})",
            }
        )
    if problems:
        raise InputError("invalid cohort config", problems)


def _read_csv(path: Path) -> tuple[list[str], Iterable[tuple[int, list[str]]]]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            "the manifest is not UTF-8",
            [
                {
                    "file": path.name,
                    "row": line,
                    "message": f"byte 0x{data[exc.start]:02x} at offset {exc.start} is not valid UTF-8; "
                    "save the manifest as UTF-8",
                }
            ],
            status=400,
        ) from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise InputError("the manifest is empty", [{"file": path.name, "message": "no header row"}]) from None
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise InputError(
            "the manifest header repeats columns",
            [{"column": name, "message": "appears more than once in the header"} for name in duplicated],
        )
    rows = ((i + 2, cells) for i, cells in enumerate(reader) if any(c.strip() for c in cells))
    return header, _csv_errors_as_input(rows, path.name)


def _csv_errors_as_input(rows: Iterable[tuple[int, list[str]]], name: str) -> Iterable[tuple[int, list[str]]]:
    try:
        yield from rows
    except csv.Error as exc:
        raise InputError("the manifest is not valid CSV", [{"file": name, "message": str(exc)}]) from exc


def _check_columns(header: list[str], needed: list[str], config: CohortConfig) -> None:
    missing = [c for c in dict.fromkeys(needed) if c not in header]
    if missing:
        raise InputError(
            f"the manifest is missing {len(missing)} required column(s)",
            [
                {
                    "column": c,
                    "message": f"required by the {config.preset} preset/config but not in the header "
                    f"({', '.join(header)})",
                }
                for c in missing
            ],
        )


def _with_image_attributes(preset: Preset, item: RowItem, path: Path, reader: RowReader) -> RowItem:
    """Add attributes read from the image itself (DICOM tags), recording a bad file on the row."""
    try:
        found = preset.image_attributes(path)
    except DicomError as exc:
        reader.fail(preset.image_column, f"{path.name}: {exc}")
        return item
    if found is None:
        return item
    attributes, patient_id = found
    return RowItem(item.item_id, item.image_ref, item.label, patient_id, {**item.attributes, **attributes})


def _assign_splits(
    accepted: list[tuple[int, RowItem, str, str | None]],
    config: CohortConfig,
    attribute_names: list[str],
    warnings: list[dict[str, Any]],
) -> list[str]:
    if isinstance(config.split, ColumnSplit):
        splits = [split or "" for _, _, _, split in accepted]
        spread: dict[str, set[str]] = {}
        for (_, item, _, _), split in zip(accepted, splits, strict=True):
            if item.patient_id is not None:
                spread.setdefault(item.patient_id, set()).add(split)
        leaking = sorted(p for p, s in spread.items() if len(s) > 1)
        if leaking:
            warnings.append(
                {
                    "message": f"{len(leaking)} patient(s) appear in more than one split "
                    f"(e.g. {', '.join(leaking[:5])}); their images are correlated across splits"
                }
            )
        return splits
    names = config.split.stratify_by if config.split.stratify_by is not None else attribute_names
    return random_split(
        labels=[item.label or 0 for _, item, _, _ in accepted],
        strata=[tuple(item.attributes.get(n) for n in names) for _, item, _, _ in accepted],
        patients=[item.patient_id for _, item, _, _ in accepted],
        fractions=config.split.fractions,
        seed=config.split.seed,
    )


class _FileIndex:
    """The archive's files, for resolving manifest references and finding unlisted files."""

    def __init__(self, files: Iterable[str]) -> None:
        self.files = set(files)
        self.listed: set[str] = set()
        self.by_name: dict[str, list[str]] = {}
        for f in self.files:
            self.by_name.setdefault(PurePosixPath(f).name, []).append(f)

    def resolve(self, ref: str) -> str | None:
        path = PurePosixPath(ref.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts:
            return None
        clean = path.as_posix().removeprefix("./")
        candidates = [clean]
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            candidates += [clean + ext for ext in IMAGE_EXTENSIONS + tuple(e.upper() for e in IMAGE_EXTENSIONS)]
        for candidate in candidates:
            if candidate in self.files:
                return candidate
        for candidate in candidates:
            same_name = self.by_name.get(PurePosixPath(candidate).name, [])
            if len(same_name) == 1:
                return same_name[0]
        return None

    def unlisted_warnings(self) -> list[dict[str, Any]]:
        unlisted = sorted(self.files - self.listed)
        warnings: list[dict[str, Any]] = [
            {"file": f, "message": "in the archive but not listed in the manifest (ignored)"}
            for f in unlisted[:MAX_LISTED_WARNINGS]
        ]
        if len(unlisted) > MAX_LISTED_WARNINGS:
            warnings.append({"message": f"and {len(unlisted) - MAX_LISTED_WARNINGS} more unlisted files (ignored)"})
        return warnings
