"""The cohort upload configuration (the ``config`` part of ``POST /v1/cohorts``).

A preset names a known manifest layout and fills in the columns, label rule and sensitive attributes;
``generic`` takes them from the config. Fields that a preset fixes are refused rather than silently
ignored, so a config always means what it says.

CheXpert labels (``finding_column`` holds 1 / 0 / −1 / blank): ``uncertain_as`` decides −1
(default ``exclude``: the row is dropped, the "U-Ignore" policy) and ``blank_as`` decides blank
(default ``negative``: CheXpert leaves a finding blank when the report does not mention it).
Dropped rows are counted in a manifest warning.

``groupings``: derived attributes made by merging an attribute's values (``app.cohorts.groupings``),
checked against the manifest's values at upload and kept with the cohort.

``keep_sources``: the uploaded originals are deleted once ingestion has decoded them, unless this is
set; then the listed images are kept, DICOM files de-identified (see ``app.cohorts.sources``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.cohorts.groupings import MAX_GROUPINGS, Grouping
from app.core.error_list import ErrorList
from app.core.fields import SafeName, Seed
from app.core.json_input import load_json_field

PRESETS = ("generic", "fitzpatrick17k", "isic2019", "chexpert", "dicom")
PresetName = Literal["generic", "fitzpatrick17k", "isic2019", "chexpert", "dicom"]
#: DICOM tags a ``dicom`` cohort may read as attributes (``app.cohorts.dicom.EXTRA_TAGS``; identifying
#: ones are stored hashed).
DicomTag = Literal[
    "EthnicGroup",
    "Manufacturer",
    "ManufacturerModelName",
    "Modality",
    "ViewPosition",
    "InstitutionName",
    "InstitutionalDepartmentName",
    "StationName",
    "DeviceSerialNumber",
]

FITZPATRICK_CLASSES = ("benign", "malignant", "non-neoplastic")
ISIC_CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
SPLITS = ("train", "val", "test")
MAX_AGE = 130  # years; larger ages are data errors

_DEFAULT_CHANNELS = {"fitzpatrick17k": 3, "isic2019": 3, "chexpert": 1, "dicom": 1, "generic": 3}
_DEFAULT_POSITIVE = {"fitzpatrick17k": "malignant", "isic2019": "MEL"}
_POSITIVE_CHOICES = {"fitzpatrick17k": FITZPATRICK_CLASSES, "isic2019": ISIC_CLASSES}

# Which optional fields each preset lets the config set (the rest are fixed by the preset).
_SETTABLE = {
    "generic": {"image_column", "label_column", "positive_class", "age_column", "patient_id_column"},
    "fitzpatrick17k": {"positive_class", "patient_id_column"},
    "isic2019": {"positive_class"},
    "chexpert": {"finding_column", "uncertain_as", "blank_as"},
    "dicom": {"image_column", "label_column", "positive_class", "dicom_tags"},
}
_PRESET_FIELDS = set().union(*_SETTABLE.values())


class ColumnSplit(BaseModel):
    """Use the manifest's own split column (values ``train`` / ``val`` / ``test``)."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["column"]
    column: str = "split"


class RandomSplit(BaseModel):
    """A seeded split, grouped by patient and stratified by label × sensitive attributes.

    ``stratify_by`` names the attributes whose joint groups are stratified (default: all).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    mode: Literal["random"]
    seed: Seed = 0
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    stratify_by: list[str] | None = None

    @field_validator("fractions")
    @classmethod
    def _fractions_sum_to_one(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(value) < 0 or value[0] == 0 or abs(sum(value) - 1) > 1e-6:
            raise ValueError("fractions are (train, val, test), non-negative, train > 0, summing to 1")
        return value


SplitPolicy = Annotated[ColumnSplit | RandomSplit, Field(discriminator="mode")]


class CohortConfig(BaseModel):
    """What an uploaded archive contains and how to turn its manifest into labelled items."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: SafeName
    preset: PresetName = "generic"
    image_column: str | None = None
    label_column: str | None = None
    positive_class: str | None = Field(
        default=None, description="label value that counts as positive; unset: labels must be 0/1"
    )
    sensitive_attributes: list[str] = Field(
        default_factory=list, description="extra manifest columns kept as sensitive attributes"
    )
    age_column: str | None = None
    age_bins: list[int] = Field(
        default_factory=lambda: [40, 60, 75],
        min_length=1,
        description="bin edges for age_group: [40, 60, 75] gives <40, 40-59, 60-74, >=75",
    )
    patient_id_column: str | None = None
    split: SplitPolicy = Field(default_factory=lambda: RandomSplit(mode="random"))
    dicom_tags: list[DicomTag] = Field(
        default_factory=list,
        description="dicom preset: further tags read as attributes named by their keyword; InstitutionName, "
        "InstitutionalDepartmentName, StationName and DeviceSerialNumber are stored only as salted hashes",
    )
    image_size: int = Field(default=128, ge=16, le=1024)
    channels: Literal[1, 3] = Field(default=3, description="default: 3 for derm presets, 1 for X-rays")
    finding_column: str | None = None
    uncertain_as: Literal["exclude", "positive", "negative"] = "exclude"
    blank_as: Literal["negative", "exclude"] = "negative"
    groupings: list[Grouping] = Field(
        default_factory=list,
        max_length=MAX_GROUPINGS,
        description="derived attributes: an attribute's values merged into coarser groups (groups or bands), "
        "usable as training groups and reported like any attribute",
    )
    keep_sources: bool = Field(
        default=False,
        description="keep the uploaded images after ingestion, DICOM files de-identified (PS3.15 basic "
        "profile); by default the originals are deleted once decoded",
    )

    @model_validator(mode="before")
    @classmethod
    def _check_preset_and_default_channels(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        preset = data.get("preset", "generic")
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
        if data.get("channels") is None:
            data = {**data, "channels": _DEFAULT_CHANNELS[preset]}
        return data

    @model_validator(mode="after")
    def _check_preset_fields(self) -> CohortConfig:
        fields = type(self).model_fields
        fixed = sorted(
            name
            for name in _PRESET_FIELDS - _SETTABLE[self.preset]
            if getattr(self, name) != fields[name].get_default(call_default_factory=True)
        )
        if fixed:
            raise ValueError(f"{', '.join(fixed)} cannot be set with the {self.preset} preset")
        if self.preset == "generic" and not (self.image_column and self.label_column):
            raise ValueError("the generic preset needs image_column and label_column")
        if self.preset == "chexpert" and not self.finding_column:
            raise ValueError("the chexpert preset needs finding_column, e.g. 'Pleural Effusion'")
        choices = _POSITIVE_CHOICES.get(self.preset)
        if choices and self.positive_class is not None and self.positive_class not in choices:
            raise ValueError(f"positive_class must be one of {', '.join(choices)} for {self.preset}")
        if len(set(self.sensitive_attributes)) != len(self.sensitive_attributes):
            raise ValueError("sensitive_attributes lists a column twice")
        if len(set(self.dicom_tags)) != len(self.dicom_tags):
            raise ValueError("dicom_tags lists a tag twice")
        names = [g.name for g in self.groupings]
        if len(set(names)) != len(names):
            raise ValueError("two groupings have the same name")
        if self.age_bins[0] <= 0 or any(b <= a for a, b in zip(self.age_bins, self.age_bins[1:], strict=False)):
            raise ValueError("age_bins must be positive and strictly increasing")
        return self

    @property
    def positive(self) -> str | None:
        """The positive class after preset defaults (``None``: labels are 0/1)."""
        return self.positive_class or _DEFAULT_POSITIVE.get(self.preset)


def parse_config(raw: str | bytes | dict[str, Any]) -> CohortConfig:
    """Validate an uploaded config, turning every problem into one ``InputError`` (status 422)."""
    data = load_json_field(raw) if isinstance(raw, str | bytes) else raw
    try:
        return CohortConfig.model_validate(data)
    except ValidationError as exc:
        errors = ErrorList()
        for e in exc.errors():
            where = ".".join(str(p) for p in e["loc"])
            message = e["msg"].removeprefix("Value error, ")
            described = f"{where}: {message}" if where else message
            errors.add({"field": where or "config", "message": described})
        raise errors.error("invalid cohort config") from exc
