"""Read and validate a cohort manifest CSV into normalised items, reporting every problem at once.

Rules a user can rely on (they are what error messages refer to):

- The manifest is UTF-8 (a byte-order mark is allowed), comma-separated, with a header row. Row
  numbers in errors count the header as row 1, as a spreadsheet shows them. Blank rows are skipped.
- Columns the preset or config needs must be in the header; other columns are ignored.
- A companion CSV (ISIC 2019's metadata beside its ground truth, ``archive.ManifestPair``) adds its
  columns to the manifest's rows with the same key (``image``): a key in one file only is an error
  naming the image, and a problem in a companion column names the companion's file and row.
- Image references are paths relative to the manifest's folder (``/`` or ``\\``). A reference without
  an extension also matches ``.jpg``, ``.jpeg``, ``.png`` or ``.dcm`` (``fitzpatrick17k`` lists
  ``md5hash``, ISIC lists ``ISIC_0000000``). A reference not found at that path matches a file of
  the same name anywhere in the archive if exactly one has it (e.g. images kept in ``images/``).
- Sizes are bounded before they are read (header, columns, row, cell, row count: see
  ``app.core.csv_input``), and every check is linear in the manifest's size.
- Errors (one ``InputError`` listing all, the first ``max_reported_errors`` of them and a count of
  the rest): unreadable or empty CSV, missing columns, bad cells (labels, ages, sex, split values,
  skin types), duplicate image ids, images listed but missing. Only then, for a preset that reads
  the images (DICOM), are the listed images read (``read_images``: from the archive) and problems
  inside them reported the same way (unreadable DICOM tags). Multi-class and multi-label labels are
  checked once the split is drawn (``labels.py``: K = 1, classes with too few training examples).
  Last, the config's groupings are checked against the values the items have
  (``groupings.grouping_problems``). Warnings: files in the archive that no row lists (never read),
  rows the label policy drops, classes merged into ``other_class``, and (split column) patients
  spread over several splits.
"""

from __future__ import annotations

import heapq
import secrets
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from app.cohorts.config import SPLITS, CohortConfig, ColumnSplit, RandomSplit
from app.cohorts.dicom import DicomError
from app.cohorts.groupings import grouping_problems
from app.cohorts.labels import Encoded, ResolvedLabels, enforce_class_counts, resolve_task
from app.cohorts.presets import Label, Preset, RowItem, RowReader, make_preset
from app.cohorts.splits import random_split
from app.core.csv_input import CsvLimits, read_csv
from app.core.error_list import ErrorList
from app.core.errors import InputError
from app.modelpkg.task import BINARY, Task
from app.settings import Settings, get_settings

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".dcm")
_ANY_CASE_EXTENSIONS = IMAGE_EXTENSIONS + tuple(e.upper() for e in IMAGE_EXTENSIONS)
MAX_LISTED_WARNINGS = 100
MAX_HEADER_SHOWN = 20  # header names quoted in a missing-column message


@dataclass(frozen=True)
class ManifestItem:
    """One accepted image: what the cache and the database store for it."""

    item_id: str
    image: str  # path relative to the manifest's folder, '/'-separated
    label: Encoded  # by ParsedManifest.task: 0 / 1, class index, or finding vector (1 / 0 / -1)
    patient_id: str | None
    split: str  # train / val / test
    attributes: dict[str, str | None]  # every name in ParsedManifest.attribute_names; None = missing
    row: int  # manifest row (header = 1), for error messages


@dataclass(frozen=True)
class ParsedManifest:
    items: list[ManifestItem]
    attribute_names: list[str]
    warnings: list[dict[str, Any]] = field(default_factory=list)
    task: Task = BINARY
    merged: dict[str, list[str]] = field(default_factory=dict)  # other_class -> classes merged into it

    def attribute_columns(self) -> dict[str, list[str | None]]:
        """Attribute values per name, in item order (for the cache and ``summary.summarize``)."""
        return {name: [item.attributes[name] for item in self.items] for name in self.attribute_names}


def parse_manifest(
    manifest_path: Path,
    config: CohortConfig,
    *,
    files: Collection[str] | None = None,
    salt: bytes | None = None,
    settings: Settings | None = None,
    read_images: ImageReader | None = None,
    companion: Path | None = None,
) -> ParsedManifest:
    """Validate the manifest against the files next to it and assign splits.

    ``files``: the archive's files relative to the manifest's folder (default: found on disk).
    ``companion``: a CSV whose columns join the manifest's rows on the preset's image column.
    ``salt``: keys the patient-id hash of DICOM cohorts (default: random, see ``dicom.py``).
    ``read_images``: yields ``(path, file)`` for the images asked for, in any order (default: they
    are read from disk next to the manifest).
    """
    settings = settings or get_settings()
    root = manifest_path.parent
    if files is None:
        files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    csvs = {manifest_path.name, *([companion.name] if companion else [])}
    index = _FileIndex(f for f in files if f not in csvs)
    preset = make_preset(config, salt if salt is not None else secrets.token_bytes(16))
    attribute_names = preset.attributes()
    _check_config_against_preset(config, preset, attribute_names)

    errors = ErrorList(settings.max_reported_errors)
    limits = CsvLimits.from_settings(settings)
    joined = _read_companion(companion, preset.image_column, limits, errors) if companion else None
    accepted, dropped = _read_rows(manifest_path, config, preset, index, limits, errors, joined)
    if errors:
        raise errors.error(f"the manifest has {errors.count:,} problem(s)")
    if not accepted:
        raise InputError("the manifest has no usable rows", [{"message": "every row was dropped or empty"}])
    resolved = resolve_task(config, [cast(Label, item.label) for _, item, _, _ in accepted])
    accepted = _read_image_attributes(preset, accepted, read_images or _folder_reader(root), errors)
    if errors:
        raise errors.error(f"the manifest's images have {errors.count:,} problem(s)")
    warnings: list[dict[str, Any]] = []
    if dropped:
        warnings.append({"message": f"{dropped} row(s) dropped by the label policy (uncertain or blank)"})
    warnings.extend(index.unlisted_warnings())

    splits = _assign_splits(accepted, resolved.labels, config, attribute_names, warnings)
    resolved = enforce_class_counts(config, resolved, splits)
    warnings.extend(_merge_warnings(resolved))
    items = [
        ManifestItem(
            item_id=item.item_id,
            image=image,
            label=label,
            patient_id=item.patient_id,
            split=split,
            attributes={name: item.attributes.get(name) for name in attribute_names},
            row=row_number,
        )
        for (row_number, item, image, _), label, split in zip(accepted, resolved.labels, splits, strict=True)
    ]
    parsed = ParsedManifest(
        items=items,
        attribute_names=attribute_names,
        warnings=warnings,
        task=resolved.task,
        merged=resolved.merged,
    )
    problems = grouping_problems(config.groupings, parsed.attribute_columns())
    if problems:
        raise InputError("the cohort's groupings do not fit its values", problems)
    return parsed


def _merge_warnings(resolved: ResolvedLabels) -> list[dict[str, Any]]:
    return [
        {"merged_classes": classes, "into": other, "message": f"classes {', '.join(classes)} merged into {other!r}"}
        for other, classes in resolved.merged.items()
    ]


@dataclass
class _Companion:
    """A companion CSV's rows by key, to be joined to the manifest's rows (each key used once)."""

    file: str
    header: list[str]
    rows: dict[str, tuple[int, list[str]]]  # key -> (row number, cells)
    used: set[str] = field(default_factory=set)


def _read_companion(path: Path, key: str, limits: CsvLimits, errors: ErrorList) -> _Companion:
    """The companion's rows by ``key``; a missing key column, a short row or a repeated key goes to ``errors``."""
    with open(path, "rb") as source, read_csv(source, limits, what="the metadata file", file=path.name) as table:
        header = table.header
        if key not in header:
            errors.add({"file": path.name, "column": key, "message": f"the join column {key!r} is not in the header"})
            raise errors.error(f"{path.name} cannot be joined to the manifest")
        at = header.index(key)
        rows: dict[str, tuple[int, list[str]]] = {}
        for row_number, cells in table.rows:
            where = {"file": path.name, "row": row_number}
            if len(cells) != len(header):
                errors.add({**where, "message": f"has {len(cells)} fields, the header has {len(header)}"})
            elif cells[at].strip() in rows:
                first = rows[cells[at].strip()][0]
                errors.add({**where, "column": key, "message": f"{key} {cells[at].strip()!r} is also on row {first}"})
            else:
                rows[cells[at].strip()] = (row_number, cells)
    return _Companion(path.name, header, rows)


def _unjoined(companion: _Companion, manifest: str, key: str) -> Iterator[dict[str, Any]]:
    """Errors for the companion's rows that no manifest row joined."""
    for value, (row_number, _) in companion.rows.items():
        if value not in companion.used:
            yield {
                "file": companion.file,
                "row": row_number,
                "column": key,
                "message": f"image {value!r} is in {companion.file} but not in {manifest}",
            }


def _read_rows(
    manifest_path: Path,
    config: CohortConfig,
    preset: Preset,
    index: _FileIndex,
    limits: CsvLimits,
    errors: ErrorList,
    companion: _Companion | None = None,
) -> tuple[list[tuple[int, RowItem, str, str | None]], int]:
    """Check every row (problems go to ``errors``); the accepted rows and the count the label policy dropped."""
    split_column = config.split.column if isinstance(config.split, ColumnSplit) else None
    accepted: list[tuple[int, RowItem, str, str | None]] = []
    seen_ids: dict[str, int] = {}
    seen_files: dict[str, int] = {}
    dropped = 0
    with (
        open(manifest_path, "rb") as source,
        read_csv(source, limits, what="the manifest", file=manifest_path.name) as table,
    ):
        header = table.header
        extra = [c for c in companion.header if c not in header] if companion else []
        needed = [*preset.columns(), *([split_column] if split_column else [])]
        _check_columns([*header, *extra], needed, config, errors)
        position = {name: i for i, name in enumerate(header)}
        key_at = position[preset.image_column] if companion else -1  # the join key's cell
        if companion:
            position.update({name: len(header) + companion.header.index(name) for name in extra})
        for row_number, cells in table.rows:
            if len(cells) != len(header):
                errors.add({"row": row_number, "message": f"has {len(cells)} fields, the header has {len(header)}"})
                continue
            located = _Located(row_number, manifest_path.name if companion else None)
            if companion:
                joined = _join(companion, cells[key_at].strip())
                if joined is None:
                    errors.add(
                        {
                            **located.where(preset.image_column),
                            "message": f"image {cells[key_at].strip()!r} is in {manifest_path.name} "
                            f"but not in {companion.file}",
                        }
                    )
                    continue
                located = _Located(row_number, manifest_path.name, companion, joined[0], set(extra))
                cells = cells + joined[1]
            reader = RowReader(_Cells(position, cells))
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
            errors.extend({**located.where(c), "message": m} for c, m in reader.errors)
            if reader.errors or image is None:
                continue
            if item.label is None:
                dropped += 1
                continue
            accepted.append((row_number, item, image, split))
    if companion:
        errors.extend(_unjoined(companion, manifest_path.name, preset.image_column))
    return accepted, dropped


def _join(companion: _Companion, key: str) -> tuple[int, list[str]] | None:
    found = companion.rows.get(key)
    if found is not None:
        companion.used.add(key)
    return found


@dataclass(frozen=True)
class _Located:
    """Where a row's problem is: the manifest's row, or the companion's row for the companion's columns."""

    row: int
    file: str | None = None
    companion: _Companion | None = None
    companion_row: int = 0
    companion_columns: set[str] = field(default_factory=set)

    def where(self, column: str) -> dict[str, Any]:
        if self.companion is not None and column in self.companion_columns:
            return {"file": self.companion.file, "row": self.companion_row, "column": column}
        return {**({"file": self.file} if self.file else {}), "row": self.row, "column": column}


class _Cells(Mapping[str, str]):
    """One row's cells by column name, without building a dict per row (rows × columns)."""

    def __init__(self, position: dict[str, int], cells: list[str]) -> None:
        self.position = position
        self.cells = cells

    def __getitem__(self, column: str) -> str:
        return self.cells[self.position[column]]

    def __iter__(self) -> Iterator[str]:
        return iter(self.position)

    def __len__(self) -> int:
        return len(self.position)


ImageReader = Callable[[list[str]], Iterable[tuple[str, IO[bytes]]]]


def _folder_reader(root: Path) -> ImageReader:
    def read(images: list[str]) -> Iterator[tuple[str, IO[bytes]]]:
        for image in images:
            with (root / image).open("rb") as f:
                yield image, f

    return read


def _read_image_attributes(
    preset: Preset, accepted: list[tuple[int, RowItem, str, str | None]], read_images: ImageReader, errors: ErrorList
) -> list[tuple[int, RowItem, str, str | None]]:
    """Each accepted row with the attributes read from its image (DICOM tags); bad files go to ``errors``.
    Images are read in the order ``read_images`` gives them (an archive's), errors reported in row order."""
    if not preset.reads_images:
        return accepted
    by_image = {image: i for i, (_, _, image, _) in enumerate(accepted)}
    out = list(accepted)
    found: dict[int, list[tuple[str, str]]] = {}
    for image, source in read_images(list(by_image)):
        i = by_image[image]
        row_number, item, _, split = accepted[i]
        reader = RowReader({})  # records this row's problems with its image
        out[i] = (row_number, _with_image_attributes(preset, item, source, image, reader), image, split)
        found[i] = reader.errors
    for i in sorted(found):
        errors.extend({"row": accepted[i][0], "column": c, "message": m} for c, m in found[i])
    return out


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


def _check_columns(header: list[str], needed: list[str], config: CohortConfig, errors: ErrorList) -> None:
    present = set(header)
    shown = ", ".join(header[:MAX_HEADER_SHOWN]) + (", …" if len(header) > MAX_HEADER_SHOWN else "")
    missing = [c for c in dict.fromkeys(needed) if c not in present]
    for c in missing:
        errors.add(
            {
                "column": c,
                "message": f"required by the {config.preset} preset/config but not in the header ({shown})",
            }
        )
    if missing:
        raise errors.error(f"the manifest is missing {len(missing)} required column(s)")


def _with_image_attributes(preset: Preset, item: RowItem, source: IO[bytes], image: str, reader: RowReader) -> RowItem:
    """Add attributes read from the image itself (DICOM tags), recording a bad file on the row."""
    name = image.rsplit("/", 1)[-1]
    try:
        found = preset.image_attributes(source, name)
    except DicomError as exc:
        reader.fail(preset.image_column, f"{name}: {exc}")
        return item
    if found is None:
        return item
    attributes, patient_id = found
    return RowItem(item.item_id, item.image_ref, item.label, patient_id, {**item.attributes, **attributes})


def _assign_splits(
    accepted: list[tuple[int, RowItem, str, str | None]],
    labels: list[Encoded],
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
        labels=cast(list[int] | list[tuple[int, ...]], labels),
        strata=[tuple(item.attributes.get(n) for n in names) for _, item, _, _ in accepted],
        patients=[item.patient_id for _, item, _, _ in accepted],
        fractions=config.split.fractions,
        seed=config.split.seed,
    )


class _FileIndex:
    """The archive's files, for resolving manifest references and finding unlisted files. Plain string
    operations: a reference is resolved per row, and ``pathlib`` cost more than the rest of the row."""

    def __init__(self, files: Iterable[str]) -> None:
        self.files = set(files)
        self.listed: set[str] = set()
        self.by_name: dict[str, str | None] = {}  # file name -> its only path, None when several share it
        for f in self.files:
            name = f.rpartition("/")[2]
            self.by_name[name] = None if name in self.by_name else f

    def resolve(self, ref: str) -> str | None:
        parts = [p for p in ref.replace("\\", "/").split("/") if p not in ("", ".")]
        if ref.startswith(("/", "\\")) or not parts or ".." in parts:
            return None
        clean, name = "/".join(parts), parts[-1]
        dot = name.rfind(".")
        candidates = [clean]
        if not (0 < dot < len(name) - 1 and name[dot:].lower() in IMAGE_EXTENSIONS):
            candidates += [clean + ext for ext in _ANY_CASE_EXTENSIONS]
        for candidate in candidates:
            if candidate in self.files:
                return candidate
        for candidate in candidates:
            found = self.by_name.get(candidate.rpartition("/")[2])
            if found is not None:
                return found
        return None

    def unlisted_warnings(self) -> list[dict[str, Any]]:
        unlisted = self.files - self.listed
        warnings: list[dict[str, Any]] = [
            {"file": f, "message": "in the archive but not listed in the manifest (ignored)"}
            for f in heapq.nsmallest(MAX_LISTED_WARNINGS, unlisted)
        ]
        if len(unlisted) > MAX_LISTED_WARNINGS:
            warnings.append({"message": f"and {len(unlisted) - MAX_LISTED_WARNINGS} more unlisted files (ignored)"})
        return warnings
