"""The training configuration: every knob of a run, validated on its own (no cohort needed).

Imports no torch, so the API can validate requests without loading the training stack.

Checks that need the cohort (attributes exist, splits have both classes, image size) live in
``app.training.validation``; this module only rejects configs that are wrong whatever the data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from app.cohorts.groupings import MAX_GROUPINGS, Grouping
from app.core.fields import ReportIntersections, Seed
from app.modelpkg.threshold_rule import (
    RuleName,
    ThresholdConstraint,
    grouped_by,
    raise_field_errors,
    rule_field_errors,
)

Method = Literal["erm", "pairwise_eo", "fair_multi_exit", "fair_multi_exit_pairwise_eo"]
Backbone = Literal["resnet18", "vgg11", "small"]

METHODS: tuple[str, ...] = ("erm", "pairwise_eo", "fair_multi_exit", "fair_multi_exit_pairwise_eo")
PAIRWISE_METHODS = frozenset({"pairwise_eo", "fair_multi_exit_pairwise_eo"})
MULTI_EXIT_METHODS = frozenset({"fair_multi_exit", "fair_multi_exit_pairwise_eo"})

#: Every backbone has four stages; multi-exit models put an IC after each plus the final head (5 exits).
MULTI_EXIT_COUNT = 5
#: Paper defaults (Chiu et al.): all exits weighted 1 for ResNet, a rising ramp for VGG.
DEFAULT_EXIT_WEIGHTS: dict[str, tuple[float, ...]] = {
    "resnet18": (1.0, 1.0, 1.0, 1.0, 1.0),
    "vgg11": (0.3, 0.45, 0.6, 0.75, 0.9),
    "small": (1.0, 1.0, 1.0, 1.0, 1.0),
}
#: Smallest input side that still leaves a non-empty map after the last stage.
MIN_IMAGE_SIZE = {"resnet18": 32, "vgg11": 32, "small": 16}
#: The confidence thresholds the fair multi-exit reference code sweeps on validation.
DEFAULT_EXIT_GRID: tuple[float, ...] = (0.8, 0.85, 0.9, 0.95, 0.99, 0.999)


class Augmentation(BaseModel):
    """Tensor augmentations suited to medical images: geometry and intensity stay small."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    hflip: bool = True
    vflip: bool = False
    rotate_degrees: float = Field(default=10.0, ge=0, le=45)
    brightness: float = Field(default=0.1, ge=0, le=0.5)
    contrast: float = Field(default=0.1, ge=0, le=0.5)

    @classmethod
    def off(cls) -> Augmentation:
        return cls(hflip=False, vflip=False, rotate_degrees=0, brightness=0, contrast=0)

    @property
    def enabled(self) -> bool:
        return self.hflip or self.vflip or self.rotate_degrees > 0 or self.brightness > 0 or self.contrast > 0


class FoldPlan(BaseModel):
    """Train on one fold of a patient-grouped, stratified K-fold split instead of the cohort's stored
    split (a study's child job): test = fold ``fold``, val = ``val_fraction`` of the other folds'
    patients, train = the rest (``app.cohorts.splits.fold_split``). The folds are stratified by label ×
    ``stratify_by``; they are drawn with ``seed`` when ``repeat_splits``, else every seed of a study
    uses the seed-0 folds."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    folds: int = Field(ge=2, le=20)
    fold: int = Field(ge=0, le=19)
    seed: int = Field(default=0, ge=0, le=19, description="the study's seed index")
    repeat_splits: bool = False
    val_fraction: float = Field(default=0.15, gt=0, lt=1)
    stratify_by: list[str] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def _fold_exists(self) -> FoldPlan:
        if self.fold >= self.folds:
            raise ValueError(f"fold {self.fold} does not exist among {self.folds} folds (0 … {self.folds - 1})")
        return self

    @property
    def split_seed(self) -> int:
        return self.seed if self.repeat_splits else 0

    @property
    def label(self) -> str:
        """The name of the held-out split (an evaluation's ``split``; a pooled sample's fold)."""
        return f"s{self.seed}/f{self.fold}"


class TrainingConfig(BaseModel):
    """One training run. Field defaults follow the papers where they state one."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    method: Method = "erm"
    sensitive_attributes: list[str] = Field(
        min_length=1,
        max_length=4,
        validation_alias=AliasChoices("sensitive_attributes", "sensitive_attribute"),  # the API's singular form
        description="one attribute, or several whose intersection cells are the training groups",
    )
    groupings: list[Grouping] = Field(
        default_factory=list,
        max_length=MAX_GROUPINGS,
        description="derived attributes for this run (as a cohort's groupings), usable in sensitive_attributes",
    )
    report_intersections: ReportIntersections | None = None
    backbone: Backbone = "resnet18"
    image_size: int | None = Field(default=None, ge=16, le=1024, description="None: the cohort cache's size")
    epochs: int = Field(default=20, ge=1, le=1000)
    batch_size: int = Field(default=64, ge=2, le=4096)
    lr: float = Field(default=1e-3, gt=0, le=10)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    momentum: float = Field(default=0.9, ge=0, lt=1, description="SGD only (Nesterov)")
    weight_decay: float = Field(default=0.0, ge=0, le=1)
    lr_schedule: Literal["cosine", "step", "constant"] = "cosine"
    lr_step_epochs: int = Field(default=10, ge=1, description="step schedule: epochs between decays")
    lr_gamma: float = Field(default=0.1, gt=0, le=1, description="step schedule: decay factor")
    seed: Seed = 0
    fairness_weight: float = Field(default=1.0, ge=0, le=100, description="λ of the pairwise-EO hinge")
    rank_only: bool = Field(default=False, description="train the hinge alone, as Lin et al. do")
    exit_weights: list[float] | None = Field(default=None, description="None: the paper's defaults")
    augment: Augmentation = Augmentation()
    patience: int | None = Field(default=5, ge=1, description="epochs without improvement; None: off")
    threshold_rule: RuleName = Field(default="youden", description="how the operating threshold is chosen on val")
    target_specificity: float | None = Field(default=None, gt=0, lt=1, description="threshold_rule target_specificity")
    target_sensitivity: float | None = Field(default=None, gt=0, le=1, description="threshold_rule target_sensitivity")
    threshold_constraint: ThresholdConstraint | None = Field(
        default=None, description="threshold_rule constrained: the band every large enough group keeps"
    )
    class_balanced: bool = Field(
        default=False,
        description="multiclass only: draw each class equally often (inverse class frequency, as Chiu et al.)",
    )
    class_thresholds: bool = Field(
        default=False,
        description="multiclass only: fit per-class thresholds on val (decision argmax p/t) instead of argmax",
    )
    exit_criterion: Literal["min_pfd", "min_compute"] = "min_pfd"
    exit_threshold_grid: list[float] = Field(default=list(DEFAULT_EXIT_GRID), min_length=1)
    exit_auc_tolerance: float = Field(default=0.01, ge=0, le=0.5)
    ic_pool_size: int = Field(default=4, ge=1, le=64)
    pretrained_weights: Path | None = Field(
        default=None,
        description="a torchvision state dict: in a request, a file name in the server's weights folder "
        "(<data_dir>/weights), recorded with its resolved location",
    )
    num_workers: int = Field(default=1, ge=0, le=16, description="batch prefetch threads; 0: inline")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = Field(default=True, description="mixed precision; only ever used on CUDA")
    fold_plan: FoldPlan | None = Field(
        default=None, description="train on one fold of a K-fold split instead of the cohort's stored split"
    )

    @field_validator("sensitive_attributes", mode="before")
    @classmethod
    def _one_attribute_as_list(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("sensitive_attributes")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("attributes must be distinct")
        return value

    @field_validator("groupings")
    @classmethod
    def _distinct_groupings(cls, value: list[Grouping]) -> list[Grouping]:
        if len({g.name for g in value}) != len(value):
            raise ValueError("two groupings have the same name")
        return value

    @field_validator("exit_threshold_grid")
    @classmethod
    def _grid_in_range(cls, value: list[float]) -> list[float]:
        if any(not 0.5 <= v <= 1.0 for v in value):
            raise ValueError("confidence thresholds lie in [0.5, 1]")
        return sorted(set(value))

    @model_validator(mode="after")
    def _consistent(self) -> TrainingConfig:
        if self.rank_only and self.method not in PAIRWISE_METHODS:
            raise ValueError("rank_only needs a pairwise method (pairwise_eo, fair_multi_exit_pairwise_eo)")
        raise_field_errors(
            "TrainingConfig",
            rule_field_errors(
                self.threshold_rule, self.target_specificity, self.target_sensitivity, self.threshold_constraint
            ),
        )
        if self.exit_weights is not None:
            if self.method not in MULTI_EXIT_METHODS:
                raise ValueError("exit_weights apply to multi-exit methods only")
            if len(self.exit_weights) != MULTI_EXIT_COUNT:
                raise ValueError(f"exit_weights needs {MULTI_EXIT_COUNT} values (4 ICs + final head)")
            if any(w < 0 for w in self.exit_weights) or not any(w > 0 for w in self.exit_weights):
                raise ValueError("exit_weights must be non-negative with at least one positive")
        return self

    @property
    def multi_exit(self) -> bool:
        return self.method in MULTI_EXIT_METHODS

    @property
    def threshold_group_attributes(self) -> list[str]:
        """Whose groups the operating point is reported for (and, constrained, held to the band)."""
        return grouped_by(self.threshold_constraint, self.sensitive_attributes)

    @property
    def pairwise(self) -> bool:
        return self.method in PAIRWISE_METHODS

    def resolved_exit_weights(self) -> tuple[float, ...]:
        """Loss weight per exit of the network this method trains (one for single-exit methods)."""
        if not self.multi_exit:
            return (1.0,)
        return tuple(self.exit_weights) if self.exit_weights else DEFAULT_EXIT_WEIGHTS[self.backbone]
