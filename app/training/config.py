"""The training configuration: every knob of a run, validated on its own (no cohort needed).

Imports no torch, so the API can validate requests without loading the training stack (a config
naming a fairness term imports that term's module, ``app.training.terms``).

A run is a backbone, ``multi_exit``, exit weights and a list of fairness ``terms``. The four method
names are aliases that expand to that form (``METHOD_ALIASES``); a config given in the expanded form
gets a descriptive ``method`` (``ALIAS_OF`` / ``composite_method``) so every run still has a name.

Checks that need the cohort (attributes exist, splits have both classes, image size) live in
``app.training.validation``; this module only rejects configs that are wrong whatever the data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.cohorts.groupings import MAX_GROUPINGS, Grouping
from app.core.fields import ReportIntersections, Seed
from app.modelpkg.manifest import DEFAULT_IC_HEAD, IcHeadKind
from app.modelpkg.threshold_rule import (
    RuleName,
    ThresholdConstraint,
    grouped_by,
    raise_field_errors,
    rule_field_errors,
)
from app.training.terms import REGISTRY, TermConfig, get_term, parse_term

Backbone = Literal["resnet18", "vgg11", "small"]

METHODS: tuple[str, ...] = ("erm", "pairwise_eo", "fair_multi_exit", "fair_multi_exit_pairwise_eo")
#: Each method name is an alias: (multi_exit, term names); a pairwise_eo term's λ is ``fairness_weight``.
METHOD_ALIASES: dict[str, tuple[bool, tuple[str, ...]]] = {
    "erm": (False, ()),
    "pairwise_eo": (False, ("pairwise_eo",)),
    "fair_multi_exit": (True, ()),
    "fair_multi_exit_pairwise_eo": (True, ("pairwise_eo",)),
}
ALIAS_OF = {form: name for name, form in METHOD_ALIASES.items()}


def composite_method(multi_exit: bool, term_names: tuple[str, ...]) -> str:
    """The method name of a run: its alias when it has one, else e.g. ``multi_exit+hsic`` or
    ``single_exit+mfd``."""
    alias = ALIAS_OF.get((multi_exit, term_names))
    return alias or "+".join(("multi_exit" if multi_exit else "single_exit", *term_names))


def _expand_method(data: dict[str, Any]) -> dict[str, Any]:
    """Expand a method alias into ``multi_exit`` and ``terms`` where the request leaves them out (the
    pairwise_eo term's weight being ``fairness_weight``). A request that gives them too is checked
    against the alias after validation (``TrainingConfig._consistent``); one without ``method`` gets
    its name there."""
    if "method" in data and data["method"] is None:  # null: not given (a config spelled as terms)
        data = {key: value for key, value in data.items() if key != "method"}
    alias = METHOD_ALIASES.get(data["method"]) if isinstance(data.get("method"), str) else None
    if alias is None:  # no method (defaults: single exit, no term) or an unknown one (its validator says)
        return data
    weight = data.get("fairness_weight", 1.0)
    return {"multi_exit": alias[0], "terms": [{"name": name, "weight": weight} for name in alias[1]], **data}


#: Every backbone has four stages; multi-exit models put an IC after each plus the final head (5 exits).
MULTI_EXIT_COUNT = 5
#: Paper defaults (Chiu et al.): all exits weighted 1 for ResNet, a rising ramp for VGG.
DEFAULT_EXIT_WEIGHTS: dict[str, tuple[float, ...]] = {
    "resnet18": (1.0, 1.0, 1.0, 1.0, 1.0),
    "vgg11": (0.3, 0.45, 0.6, 0.75, 0.9),
    "small": (1.0, 1.0, 1.0, 1.0, 1.0),
}
#: The MFD reference clips the gradient norm at 1.0 (docs/methods.md 2a).
MFD_GRAD_CLIP_NORM = 1.0
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

    method: str = Field(
        default="erm",
        description="an alias (erm, pairwise_eo, fair_multi_exit, fair_multi_exit_pairwise_eo) for multi_exit + "
        "terms; with multi_exit and terms given it may be left out (a descriptive name is filled in)",
        examples=list(METHODS),
    )
    multi_exit: bool = Field(default=False, description="an internal classifier after each stage (5 exits)")
    terms: list[SerializeAsAny[TermConfig]] = Field(
        default_factory=list,
        max_length=8,
        description='fairness terms added at every trained exit, e.g. [{"name": "hsic", "weight": 0.5}]; '
        "names: pairwise_eo, hsic, mfd (docs/methods.md)",
        json_schema_extra={"x-term-names": list(REGISTRY)},  # the registered terms, for forms built from the schema
    )
    keep_weights: bool = Field(
        default=False, description="also keep the PyTorch weights (weights.pt) so the model can be an mfd teacher"
    )
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
    fairness_weight: float = Field(
        default=1.0, ge=0, le=100, description="λ of the pairwise-EO hinge (the pairwise_eo term's weight)"
    )
    rank_only: bool = Field(default=False, description="train the hinge alone, as Lin et al. do")
    exit_weights: list[float] | None = Field(default=None, description="None: the paper's defaults")
    grad_clip_norm: float | None = Field(
        default=None,
        gt=0,
        le=1000,
        description="clip the gradients' total norm at this value before each step; None: no clipping, except "
        "in runs with an mfd term, which clip at 1.0 as the MFD reference does (docs/methods.md 2a)",
    )
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
    ic_head: IcHeadKind = Field(
        default=DEFAULT_IC_HEAD,
        description="multi-exit only: paper (the paper's IC head: conv, then pool) or pooled (a cheaper head that "
        "pools first, so its convs run on the pooled map; not the paper's, docs/methods.md)",
    )
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

    @model_validator(mode="before")
    @classmethod
    def _expand_alias(cls, data: Any) -> Any:
        return _expand_method(data) if isinstance(data, dict) else data

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value not in METHOD_ALIASES and not value.startswith(("multi_exit+", "single_exit+")):
            raise ValueError(f"unknown method {value!r}; known: {', '.join(METHODS)}, or give multi_exit and terms")
        return value

    @field_validator("terms", mode="before")
    @classmethod
    def _registered_terms(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        terms = []
        for i, item in enumerate(value):
            try:
                terms.append(parse_term(item))
            except ValidationError as exc:
                where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
                raise PydanticCustomError("term", "terms.{i}: {where}", {"i": i, "where": where}) from None
        names = [t.name for t in terms]
        if len(set(names)) != len(names):
            raise PydanticCustomError("term", "each term may be named once")
        return terms

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
        derived = composite_method(self.multi_exit, self.term_names)
        if self.method != derived:
            if "method" in self.model_fields_set:
                raise ValueError(
                    f"method {self.method!r} does not match multi_exit and terms ({derived}); leave it out"
                )
            object.__setattr__(self, "method", derived)  # a descriptive name for a config given as terms
        pairwise = next((t for t in self.terms if t.name == "pairwise_eo"), None)
        if pairwise is not None and pairwise.weight != self.fairness_weight:
            if "fairness_weight" in self.model_fields_set:
                raise ValueError("fairness_weight is the pairwise_eo term's weight; give one of them, or both equal")
            object.__setattr__(self, "fairness_weight", pairwise.weight)
        if self.rank_only and not self.pairwise:
            raise ValueError("rank_only needs a pairwise_eo term (methods pairwise_eo, fair_multi_exit_pairwise_eo)")
        raise_field_errors(
            "TrainingConfig",
            rule_field_errors(
                self.threshold_rule, self.target_specificity, self.target_sensitivity, self.threshold_constraint
            ),
        )
        if self.exit_weights is not None:
            if not self.multi_exit:
                raise ValueError("exit_weights apply to multi-exit methods only")
            if len(self.exit_weights) != MULTI_EXIT_COUNT:
                raise ValueError(f"exit_weights needs {MULTI_EXIT_COUNT} values (4 ICs + final head)")
            if any(w < 0 for w in self.exit_weights) or not any(w > 0 for w in self.exit_weights):
                raise ValueError("exit_weights must be non-negative with at least one positive")
        return self

    @property
    def term_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.terms)

    @property
    def teacher_model_version_id(self) -> str | None:
        """The model version a term distils from (mfd), if the run has one."""
        teacher = next((t for t in self.terms if get_term(t.name).needs_teacher), None)
        return None if teacher is None else str(teacher.model_dump()["teacher_model_version_id"])

    @property
    def teacher_field(self) -> str:
        """The request field naming the teacher, for error messages."""
        index = next((i for i, t in enumerate(self.terms) if get_term(t.name).needs_teacher), 0)
        return f"terms.{index}.teacher_model_version_id"

    @property
    def threshold_group_attributes(self) -> list[str]:
        """Whose groups the operating point is reported for (and, constrained, held to the band)."""
        return grouped_by(self.threshold_constraint, self.sensitive_attributes)

    @property
    def pairwise(self) -> bool:
        return "pairwise_eo" in self.term_names

    def resolved_grad_clip_norm(self) -> float | None:
        """The gradient-norm clip the trainer applies: the config's, else the MFD reference's for mfd runs."""
        if self.grad_clip_norm is not None:
            return self.grad_clip_norm
        return MFD_GRAD_CLIP_NORM if "mfd" in self.term_names else None

    def resolved_exit_weights(self) -> tuple[float, ...]:
        """Loss weight per exit of the network this method trains (one for single-exit methods)."""
        if not self.multi_exit:
            return (1.0,)
        return tuple(self.exit_weights) if self.exit_weights else DEFAULT_EXIT_WEIGHTS[self.backbone]


def training_fields(config: dict[str, Any]) -> dict[str, Any]:
    """The training config in a job's config, which may carry bookkeeping beside it (a study's ids)."""
    return {key: value for key, value in config.items() if key in TrainingConfig.model_fields}
