"""The cohort upload configuration (the ``config`` part of ``POST /v1/cohorts``).

A preset names a known manifest layout and fills in the columns, label rule and sensitive attributes;
``generic`` takes them from the config. Fields that a preset fixes are refused rather than silently
ignored, so a config always means what it says.

CheXpert labels (``finding_column`` holds 1 / 0 / −1 / blank): ``uncertain_as`` decides −1
(default ``exclude``: the row is dropped, the "U-Ignore" policy) and ``blank_as`` decides blank
(default ``negative``: CheXpert leaves a finding blank when the report does not mention it).
Dropped rows are counted in a manifest warning.

``task`` (default ``binary``, today's behaviour) says what a label is (``app.modelpkg.task``):

- ``multiclass``: one of K classes. ``generic``/``dicom`` read class names from ``label_column``;
  ``classes`` declares them and their (logit) order (default: the sorted distinct values), and a value
  outside the declared classes is a row error. ``fitzpatrick17k`` reads ``label_field``
  (``three_partition_label``, ``nine_partition_label`` or the fine ``label``). ``isic2019`` reads the
  one-hot diagnosis columns (exactly one 1 per row; ``UNK`` is a class only when some row has it).
- ``multilabel``: F binary findings. ``generic``/``dicom``: ``finding_columns`` (cells 1 / 0 / blank,
  ``blank_as`` ``negative`` or ``missing``); ``chexpert``: ``findings``, each with its own
  ``uncertain_as`` (default ``missing``: CheXpert's U-Ignore for that finding only — ``exclude``
  would drop the whole row) and ``blank_as``. A ``missing`` finding is label −1, unknown for that
  finding only; a row with every finding unknown is a row error.
- ``min_class_count`` / ``other_class``: after the split, a class (multi-label: a finding's positives)
  with fewer training examples than ``min_class_count`` is refused, unless ``other_class`` names the
  class such multi-class classes are merged into (the summary lists the merge). One class left is refused.

``isic2019`` accepts the challenge's two files as shipped: ``ground_truth_file`` (one-hot diagnoses)
and ``metadata_file`` (age, site, lesion, sex) joined on ``image``. Without them set, an archive with
no ``manifest.csv`` that has both ``ISIC_2019_Training_GroundTruth.csv`` and
``ISIC_2019_Training_Metadata.csv`` at its root is read that way (``manifest_pair``).

``groupings``: derived attributes made by merging an attribute's values (``app.cohorts.groupings``),
checked against the manifest's values at upload and kept with the cohort.

``keep_sources``: the uploaded originals are deleted once ingestion has decoded them, unless this is
set; then the listed images are kept, DICOM files de-identified (see ``app.cohorts.sources``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.cohorts.archive import ManifestPair
from app.cohorts.groupings import MAX_GROUPINGS, Grouping
from app.core.error_list import ErrorList
from app.core.fields import SafeName, Seed
from app.core.json_input import load_json_field
from app.modelpkg.task import MAX_CLASSES, MAX_FINDINGS, ClassName, TaskKind

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
FitzpatrickLabel = Literal["three_partition_label", "nine_partition_label", "label"]
ISIC_CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
ISIC_GROUND_TRUTH = "ISIC_2019_Training_GroundTruth.csv"
ISIC_METADATA = "ISIC_2019_Training_Metadata.csv"
SPLITS = ("train", "val", "test")
MAX_AGE = 130  # years; larger ages are data errors

_DEFAULT_CHANNELS = {"fitzpatrick17k": 3, "isic2019": 3, "chexpert": 1, "dicom": 1, "generic": 3}
_DEFAULT_POSITIVE = {"fitzpatrick17k": "malignant", "isic2019": "MEL"}
_POSITIVE_CHOICES = {"fitzpatrick17k": FITZPATRICK_CLASSES, "isic2019": ISIC_CLASSES}

# Which optional fields each preset lets the config set (the rest are fixed by the preset).
_SETTABLE = {
    "generic": {
        "image_column",
        "label_column",
        "positive_class",
        "age_column",
        "patient_id_column",
        "classes",
        "finding_columns",
        "blank_as",
    },
    "fitzpatrick17k": {"positive_class", "patient_id_column", "label_field"},
    "isic2019": {"positive_class", "ground_truth_file", "metadata_file"},
    "chexpert": {"finding_column", "uncertain_as", "blank_as", "findings"},
    "dicom": {"image_column", "label_column", "positive_class", "dicom_tags", "classes", "finding_columns", "blank_as"},
}
_PRESET_FIELDS = set().union(*_SETTABLE.values())
# Which presets each task has, and the fields that mean nothing for it (refused when set).
_TASK_PRESETS = {
    "binary": set(PRESETS),
    "multiclass": {"generic", "dicom", "fitzpatrick17k", "isic2019"},
    "multilabel": {"generic", "dicom", "chexpert"},
}
# What a blank finding cell may mean, where a config's top-level ``blank_as`` applies at all.
_BLANK_AS = {
    ("binary", "chexpert"): ("negative", "exclude"),
    ("multilabel", "generic"): ("negative", "missing"),
    ("multilabel", "dicom"): ("negative", "missing"),
}
_NOT_FOR_TASK = {
    "binary": {"classes", "label_field", "finding_columns", "findings", "min_class_count", "other_class"},
    "multiclass": {"positive_class", "finding_column", "uncertain_as", "blank_as", "finding_columns", "findings"},
    "multilabel": {"positive_class", "classes", "label_field", "other_class", "finding_column", "uncertain_as"},
}


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


class FindingPolicy(BaseModel):
    """One CheXpert finding of a multi-label cohort and what its uncertain (−1) and blank cells mean."""

    model_config = ConfigDict(extra="forbid")
    column: ClassName
    uncertain_as: Literal["exclude", "positive", "negative", "missing"] = "missing"
    blank_as: Literal["negative", "missing"] = "negative"


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
    blank_as: Literal["negative", "exclude", "missing"] = Field(
        default="negative",
        description="blank finding cells: binary chexpert negative|exclude; multilabel generic/dicom negative|missing",
    )
    task: TaskKind = Field(default="binary", description="binary (default), multiclass or multilabel")
    classes: list[ClassName] | None = Field(
        default=None,
        max_length=MAX_CLASSES,
        description="multiclass generic/dicom: the declared classes in logit order (default: sorted distinct labels)",
    )
    label_field: FitzpatrickLabel = Field(
        default="three_partition_label", description="multiclass fitzpatrick17k: the label column to predict"
    )
    finding_columns: list[ClassName] | None = Field(
        default=None, max_length=MAX_FINDINGS, description="multilabel generic/dicom: one 1/0/blank column per finding"
    )
    findings: list[FindingPolicy] | None = Field(
        default=None, max_length=MAX_FINDINGS, description="multilabel chexpert: the findings and their policies"
    )
    min_class_count: int = Field(
        default=1, ge=1, description="fewest training examples a class (multilabel: a finding's positives) may have"
    )
    other_class: ClassName | None = Field(
        default=None, description="multiclass: merge classes below min_class_count into this class instead of refusing"
    )
    ground_truth_file: str | None = Field(
        default=None, description=f"isic2019: the one-hot diagnosis CSV at the archive root ({ISIC_GROUND_TRUTH})"
    )
    metadata_file: str | None = Field(
        default=None, description=f"isic2019: the metadata CSV joined on image ({ISIC_METADATA})"
    )
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
        self._check_task_fields()
        if self.preset == "generic" and not self.image_column:
            raise ValueError("the generic preset needs image_column")
        if self.preset == "generic" and self.task != "multilabel" and not self.label_column:
            raise ValueError("the generic preset needs label_column")
        if self.preset == "chexpert" and self.task == "binary" and not self.finding_column:
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

    def _check_task_fields(self) -> None:
        if self.preset not in _TASK_PRESETS[self.task]:
            presets = ", ".join(p for p in PRESETS if p in _TASK_PRESETS[self.task])
            raise ValueError(f"the {self.preset} preset has no {self.task} task (presets for it: {presets})")
        fields = type(self).model_fields
        refused = sorted(
            name
            for name in _NOT_FOR_TASK[self.task]
            if getattr(self, name) != fields[name].get_default(call_default_factory=True)
        )
        if refused:
            raise ValueError(f"{', '.join(refused)} cannot be set for a {self.task} task")
        blank_choices = _BLANK_AS.get((self.task, self.preset), ("negative",))
        if self.blank_as not in blank_choices:
            where = f"a {self.task} {self.preset} cohort"
            if blank_choices == ("negative",):
                raise ValueError(f"blank_as cannot be set for {where}")
            raise ValueError(f"blank_as must be {' or '.join(blank_choices)} for {where}")
        if self.task == "multilabel" and self.preset == "chexpert" and not self.findings:
            raise ValueError('a multilabel chexpert cohort needs findings, e.g. [{"column": "Edema"}]')
        if self.task == "multilabel" and self.preset != "chexpert" and not self.finding_columns:
            raise ValueError(f"a multilabel {self.preset} cohort needs finding_columns")
        names = self.finding_names() if self.task == "multilabel" else (self.classes or [])
        if len(set(names)) != len(names):
            raise ValueError("a class or finding is listed twice")
        if self.classes is not None and len(self.classes) < 2:
            raise ValueError(f"classes lists {len(self.classes)} class(es); a multiclass task needs at least 2")
        if (self.ground_truth_file is None) != (self.metadata_file is None):
            raise ValueError("ground_truth_file and metadata_file are set together (the two ISIC 2019 CSVs)")

    def finding_names(self) -> list[str]:
        """The multi-label findings in logit order (empty for other tasks)."""
        if self.findings:
            return [f.column for f in self.findings]
        return list(self.finding_columns or [])

    def manifest_pair(self) -> ManifestPair | None:
        """isic2019's two CSVs: required when the config names them, else read when the archive has no
        ``manifest.csv``; ``None`` for other presets."""
        if self.preset != "isic2019":
            return None
        if self.ground_truth_file and self.metadata_file:
            return ManifestPair(self.ground_truth_file, self.metadata_file, required=True)
        return ManifestPair(ISIC_GROUND_TRUTH, ISIC_METADATA, required=False)

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
