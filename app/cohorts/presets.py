"""Manifest layouts: how one CSV row of each preset becomes a labelled item.

Every preset maps a row to the same normalised ``RowItem``; per-row problems are collected on a
``RowReader`` (never raised one at a time) so the manifest step can report every bad row at once.

Normalised attribute values (``None`` = missing, which joins no group):

- ``sex``: ``male`` / ``female`` / ``other`` (from male/m, female/f, other/o; blank or ``unknown``
  is missing).
- ``age_group``: the age binned by ``CohortConfig.age_bins``; [40, 60, 75] gives ``<40``,
  ``40-59``, ``60-74``, ``>=75`` (a bin holds ages from its lower edge up to, not including, the next).
- ``skin_type``: Fitzpatrick ``1``–``6`` (−1 is missing); ``skin_tone``: ``light`` (1–3) /
  ``dark`` (4–6).
- columns listed in ``sensitive_attributes``: the stripped cell text, blank is missing.

Patient ids: ``generic`` from ``patient_id_column``; ``isic2019`` the ``lesion_id``; ``chexpert`` the
``patientNNNNN`` folder in ``Path``; ``dicom`` a salted hash of the PatientID tag (see ``dicom.py``);
``fitzpatrick17k`` from ``patient_id_column`` when the manifest has one (the public table has none: each
image is then its own group, so a patient's images can land on both sides of a split).

Labels (``RowItem.label``) by task: binary ``0``/``1``; multiclass the class name as written (indices
are given once every row is read, ``labels.py``); multilabel one ``1``/``0``/``-1`` (unknown) per
finding, in the config's finding order.
"""

from __future__ import annotations

import bisect
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

from app.cohorts import dicom
from app.cohorts.config import FITZPATRICK_CLASSES, ISIC_CLASSES, MAX_AGE, CohortConfig, FindingPolicy
from app.cohorts.dicom_reader import DicomTooLarge
from app.cohorts.image_limits import ImageLimits
from app.core.errors import InputError
from app.modelpkg.task import UNKNOWN_FINDING
from app.settings import get_settings

_SEX = {"male": "male", "m": "male", "female": "female", "f": "female", "other": "other", "o": "other"}
_MISSING_SEX = {"unknown", "u"}
_TRUE = {"1", "1.0", "true"}
_FALSE = {"0", "0.0", "false"}
_CHEXPERT_POLICY = {"positive": 1, "negative": 0, "exclude": None, "missing": UNKNOWN_FINDING}
_CHEXPERT_PATIENT = re.compile(r"patient\d+")
MAX_CLASSES_SHOWN = 10  # declared classes quoted in an error message

#: A row's label: binary 0/1, a multiclass class name, or a multilabel vector (see the module docstring).
Label = int | str | tuple[int, ...]


@dataclass(frozen=True)
class RowItem:
    """One manifest row, normalised. ``label`` is ``None`` when the label policy drops the row."""

    item_id: str
    image_ref: str  # the manifest's reference to the image: a path, or an id without extension
    label: Label | None
    patient_id: str | None
    attributes: dict[str, str | None]


class RowReader:
    """Typed access to one row's cells that records problems instead of raising."""

    def __init__(self, row: Mapping[str, str]) -> None:
        self.row = row
        self.errors: list[tuple[str, str]] = []

    def fail(self, column: str, message: str) -> None:
        self.errors.append((column, message))

    def text(self, column: str) -> str | None:
        value = self.row[column].strip()
        return value or None

    def required(self, column: str) -> str:
        value = self.text(column)
        if value is None:
            self.fail(column, "is empty")
        return value or ""

    def binary(self, column: str, positive: str | None) -> int | None:
        """0/1 (or true/false) when ``positive`` is unset, else 1 iff the value equals ``positive``."""
        value = self.text(column)
        if value is None:
            self.fail(column, "label is empty")
            return None
        if positive is not None:
            return int(value == positive)
        if value.lower() in _TRUE:
            return 1
        if value.lower() in _FALSE:
            return 0
        self.fail(column, f"label {value!r} is not binary (0/1); set positive_class to map other labels")
        return None

    def class_name(self, column: str, declared: frozenset[str] | None) -> str | None:
        """A multiclass label: the cell's text, which must be one of ``declared`` when classes are declared."""
        value = self.text(column)
        if value is None:
            self.fail(column, "label is empty")
            return None
        if declared is not None and value not in declared:
            shown = sorted(declared)[:MAX_CLASSES_SHOWN]
            more = ", …" if len(declared) > MAX_CLASSES_SHOWN else ""
            self.fail(column, f"label {value!r} is not one of the declared classes ({', '.join(shown)}{more})")
            return None
        return value

    def finding(self, column: str, blank: int | None) -> int | None:
        """One multi-label finding: 1/0 (or true/false); a blank cell is ``blank`` (0, or −1 = unknown)."""
        value = self.text(column)
        if value is None:
            return blank
        if value.lower() in _TRUE:
            return 1
        if value.lower() in _FALSE:
            return 0
        self.fail(column, f"finding value {value!r} is not 1, 0 or blank")
        return None

    def findings(self, values: dict[str, int | None]) -> tuple[int, ...] | None:
        """The finding vector of a row, or ``None`` when a cell was bad; a row with every finding unknown
        is an error (it would teach nothing and count nowhere)."""
        if any(v is None for v in values.values()):
            return None
        if all(v == UNKNOWN_FINDING for v in values.values()):
            self.fail(", ".join(values), "every finding is unknown (blank or uncertain read as missing)")
            return None
        return tuple(v for v in values.values() if v is not None)

    def sex(self, column: str) -> str | None:
        value = self.text(column)
        if value is None or value.lower() in _MISSING_SEX:
            return None
        if value.lower() not in _SEX:
            self.fail(column, f"sex {value!r} is not male/female/other or blank")
            return None
        return _SEX[value.lower()]

    def age(self, column: str) -> float | None:
        value = self.text(column)
        if value is None:
            return None
        try:
            age = float(value)
        except ValueError:
            self.fail(column, f"age {value!r} is not a number")
            return None
        if not 0 <= age <= MAX_AGE:
            self.fail(column, f"age {age:g} is outside 0-{MAX_AGE}")
            return None
        return age


def age_group(age: float | None, edges: list[int]) -> str | None:
    """The ``age_group`` label of an age (see the module docstring)."""
    if age is None:
        return None
    i = bisect.bisect_right(edges, age)
    if i == 0:
        return f"<{edges[0]}"
    if i == len(edges):
        return f">={edges[-1]}"
    return f"{edges[i - 1]}-{edges[i] - 1}"


class Preset(ABC):
    """Base: the columns a layout needs and the attributes it yields; subclasses map rows."""

    image_column: str
    required_columns: tuple[str, ...]
    attribute_names: tuple[str, ...]
    reads_images = False  # whether ``image_attributes`` reads the files (only DICOM's does)

    def __init__(self, config: CohortConfig) -> None:
        self.config = config
        self.extra_attributes = list(config.sensitive_attributes)

    def columns(self) -> list[str]:
        """Every column the manifest must have (split column aside)."""
        return list(dict.fromkeys([*self.required_columns, *self.extra_attributes]))

    def attributes(self) -> list[str]:
        return [*self.attribute_names, *self.extra_attributes]

    @abstractmethod
    def map_row(self, r: RowReader) -> RowItem:
        """Turn one manifest row into an item (label, patient, attributes) or raise a row error."""

    def image_attributes(self, source: IO[bytes], name: str) -> tuple[dict[str, str | None], str | None] | None:
        """Attributes and patient id read from the image file ``name`` itself (only DICOM has any)."""
        return None

    def extras(self, r: RowReader) -> dict[str, str | None]:
        return {column: r.text(column) for column in self.extra_attributes}


class ColumnLabels:
    """The label of a ``generic`` or ``dicom`` row: ``label_column`` (binary or a class name) or, for a
    multi-label task, the ``finding_columns``."""

    def __init__(self, config: CohortConfig, label_column: str) -> None:
        self.config = config
        self.label_column = label_column
        self.declared = frozenset(config.classes) if config.classes is not None else None
        self.blank = UNKNOWN_FINDING if config.blank_as == "missing" else 0

    def columns(self) -> tuple[str, ...]:
        return tuple(self.config.finding_columns or ()) if self.config.task == "multilabel" else (self.label_column,)

    def read(self, r: RowReader) -> Label | None:
        if self.config.task == "multiclass":
            return r.class_name(self.label_column, self.declared)
        if self.config.task == "multilabel":
            return r.findings({c: r.finding(c, self.blank) for c in self.config.finding_columns or ()})
        return r.binary(self.label_column, self.config.positive)


class GenericPreset(Preset):
    def __init__(self, config: CohortConfig) -> None:
        super().__init__(config)
        assert config.image_column  # guaranteed by CohortConfig, as is label_column outside multilabel
        self.image_column = config.image_column
        self.labels = ColumnLabels(config, config.label_column or "")
        optional = [c for c in (config.age_column, config.patient_id_column) if c]
        self.required_columns = (self.image_column, *self.labels.columns(), *optional)
        self.attribute_names = ("age_group",) if config.age_column else ()

    def map_row(self, r: RowReader) -> RowItem:
        image = r.required(self.image_column)
        attributes = self.extras(r)
        if self.config.age_column:
            attributes["age_group"] = age_group(r.age(self.config.age_column), self.config.age_bins)
        return RowItem(
            item_id=image,
            image_ref=image,
            label=self.labels.read(r),
            patient_id=r.text(self.config.patient_id_column) if self.config.patient_id_column else None,
            attributes=attributes,
        )


class FitzpatrickPreset(Preset):
    """The Fitzpatrick 17k table: image ``<md5hash>.jpg|png``, target ``three_partition_label`` (binary:
    malignant or not; multiclass: ``label_field``, any of the table's label columns)."""

    image_column = "md5hash"
    attribute_names = ("skin_type", "skin_tone")

    def __init__(self, config: CohortConfig) -> None:
        super().__init__(config)
        patient = (config.patient_id_column,) if config.patient_id_column else ()
        self.target = config.label_field
        self.required_columns = ("md5hash", "fitzpatrick_scale", self.target, *patient)

    def map_row(self, r: RowReader) -> RowItem:
        md5 = r.required("md5hash")
        target = r.required(self.target)
        label: Label | None = None
        if target and self.target == "three_partition_label" and target not in FITZPATRICK_CLASSES:
            r.fail(self.target, f"{target!r} is not one of {', '.join(FITZPATRICK_CLASSES)}")
        elif target:
            label = target if self.config.task == "multiclass" else int(target == self.config.positive)
        scale = r.required("fitzpatrick_scale")
        skin_type = None
        if scale and scale not in {"-1", "1", "2", "3", "4", "5", "6"}:
            r.fail("fitzpatrick_scale", f"{scale!r} is not a skin type 1-6 or -1 (unknown)")
        elif scale and scale != "-1":
            skin_type = scale
        tone = None if skin_type is None else ("light" if int(skin_type) <= 3 else "dark")
        attributes = {"skin_type": skin_type, "skin_tone": tone, **self.extras(r)}
        patient = r.text(self.config.patient_id_column) if self.config.patient_id_column else None
        return RowItem(md5, md5, label, patient, attributes)


class IsicPreset(Preset):
    """ISIC 2019 metadata joined with its one-hot ground truth; the lesion is the grouping unit."""

    image_column = "image"
    required_columns = ("image", "age_approx", "sex", "anatom_site_general", "lesion_id", *ISIC_CLASSES)
    attribute_names = ("sex", "age_group", "anatom_site_general")

    def map_row(self, r: RowReader) -> RowItem:
        image = r.required("image")
        hot = []
        for code in ISIC_CLASSES:
            value = r.required(code).lower()
            if value in _TRUE:
                hot.append(code)
            elif value and value not in _FALSE:
                r.fail(code, f"one-hot value {value!r} is not 0 or 1")
        label: Label | None = None
        if len(hot) != 1:
            r.fail("MEL..UNK", f"row has {len(hot)} classes set ({', '.join(hot)}), expected exactly one")
        else:
            label = hot[0] if self.config.task == "multiclass" else int(hot[0] == self.config.positive)
        attributes = {
            "sex": r.sex("sex"),
            "age_group": age_group(r.age("age_approx"), self.config.age_bins),
            "anatom_site_general": r.text("anatom_site_general"),
            **self.extras(r),
        }
        return RowItem(image, image, label, r.text("lesion_id"), attributes)


class ChexpertPreset(Preset):
    """CheXpert: finding columns of 1 / 0 / −1 / blank (policies in ``config.py``): one for a binary
    task, the config's ``findings`` for a multi-label one."""

    image_column = "Path"
    attribute_names = ("sex", "age_group")

    def __init__(self, config: CohortConfig) -> None:
        super().__init__(config)
        self.policies = config.findings or [
            FindingPolicy(column=config.finding_column or "", uncertain_as=config.uncertain_as, blank_as="negative")
        ]
        self.blank_as = None if config.findings else config.blank_as  # binary: negative | exclude
        self.required_columns = ("Path", "Sex", "Age", *(p.column for p in self.policies))

    def _finding(self, r: RowReader, policy: FindingPolicy) -> int | None:
        """The finding's label; ``None`` when the row is dropped (``exclude``) or the cell is bad."""
        value = r.text(policy.column)
        if value is None:
            return _CHEXPERT_POLICY[self.blank_as or policy.blank_as]
        if value in {"1", "1.0"}:
            return 1
        if value in {"0", "0.0"}:
            return 0
        if value in {"-1", "-1.0"}:
            return _CHEXPERT_POLICY[policy.uncertain_as]
        r.fail(policy.column, f"finding value {value!r} is not 1, 0, -1 or blank")
        return None

    def map_row(self, r: RowReader) -> RowItem:
        path = r.required("Path")
        values = {p.column: self._finding(r, p) for p in self.policies}
        label: Label | None
        if self.config.task == "binary":
            label = values[self.policies[0].column]
        elif r.errors or any(v is None for v in values.values()):
            label = None  # a bad cell (reported) or a finding whose policy drops the row
        else:
            label = r.findings(values)
        patient = _CHEXPERT_PATIENT.search(path)
        attributes = {
            "sex": r.sex("Sex"),
            "age_group": age_group(r.age("Age"), self.config.age_bins),
            **self.extras(r),
        }
        return RowItem(path, path, label, patient.group(0) if patient else None, attributes)


class DicomPreset(Preset):
    """DICOM files listed with a label; demographics (and the ``dicom_tags`` named) come from the files'
    tags, identifying ones hashed (``dicom.py``)."""

    reads_images = True

    def __init__(self, config: CohortConfig, salt: bytes) -> None:
        super().__init__(config)
        self.attribute_names = ("sex", "age_group", *config.dicom_tags)
        self.image_column = config.image_column or "file"
        self.labels = ColumnLabels(config, config.label_column or "label")
        self.required_columns = (self.image_column, *self.labels.columns())
        self.salt = salt

    def map_row(self, r: RowReader) -> RowItem:
        path = r.required(self.image_column)
        return RowItem(path, path, self.labels.read(r), None, self.extras(r))

    def image_attributes(self, source: IO[bytes], name: str) -> tuple[dict[str, str | None], str | None]:
        """Raises ``dicom.DicomError`` for unreadable files or malformed tags (the manifest lists it with
        the row), and a 413 ``InputError`` at once for a file over a read limit."""
        try:
            tags = dicom.read_demographics(
                source, self.salt, ImageLimits.from_settings(get_settings()), self.config.dicom_tags
            )
        except DicomTooLarge as exc:
            raise InputError(str(exc), [{"file": name, "message": str(exc)}], status=413) from exc
        attributes = {"sex": tags.sex, "age_group": age_group(tags.age, self.config.age_bins), **tags.tags}
        return attributes, tags.patient_hash


def make_preset(config: CohortConfig, salt: bytes) -> Preset:
    """The row mapper for a config; ``salt`` keys the patient-id hash of the dicom preset."""
    if config.preset == "dicom":
        return DicomPreset(config, salt)
    presets: dict[str, type[Preset]] = {
        "generic": GenericPreset,
        "fitzpatrick17k": FitzpatrickPreset,
        "isic2019": IsicPreset,
        "chexpert": ChexpertPreset,
    }
    return presets[config.preset](config)
