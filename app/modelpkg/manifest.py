"""``model.json``, typed: everything a model folder says about its graphs besides the graphs themselves.

Two layers, because two parties write it: ``ModelDescription`` is what the trainer knows (the network,
its input and preprocessing, the thresholds it chose and how, the training run), ``ModelManifest``
adds what the exporter produces (graph specs, the parity check, each file's SHA-256, library
versions). The JSON keys are the field names; ``docs/model-format.md`` describes every one.

Reading is strict: unknown keys, missing keys, NaN, an input serving cannot produce, and counts that
disagree (thresholds, costs and graphs for a different number of exits) are refused with
``ManifestError`` naming each offending key, so a malformed folder never reaches ONNX Runtime.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Final, Literal

from pydantic import AwareDatetime, Field, JsonValue, StringConstraints, ValidationError, model_validator
from pydantic_core import ErrorDetails

from app.modelpkg.base import Section
from app.modelpkg.errors import ManifestError
from app.modelpkg.preprocessing import Preprocessing
from app.modelpkg.task import Task
from app.modelpkg.threshold_rule import ThresholdRule

FORMAT_VERSION: Final = 1
MANIFEST_FILE = "model.json"
#: A run with ``keep_weights`` also keeps its PyTorch state dict, so the model can teach an ``mfd`` run.
WEIGHTS_FILE = "weights.pt"
MAX_REPORTED_ERRORS = 5

#: A plain file name inside the model folder: no directories, so no path can leave the folder.
FileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
#: The internal classifiers' layout (docs/methods.md §2): ``paper``, the paper's head (conv, then pool),
#: or ``pooled``, FairAudit's cheap head that pools the stage's map first so its convs run on p × p.
IcHeadKind = Literal["paper", "pooled"]
IC_HEAD_KINDS: Final[tuple[IcHeadKind, ...]] = ("paper", "pooled")
DEFAULT_IC_HEAD: Final[IcHeadKind] = "paper"


class Architecture(Section):
    backbone: str = Field(description="resnet18, vgg11 or small (docs/methods.md)")
    n_stages: int = Field(ge=1, description="backbone stages")
    n_exits: int = Field(ge=1, description="5 for multi-exit models (4 internal classifiers + final head), else 1")
    exit_stage: list[int] = Field(description="per exit, the backbone stage whose output it reads")
    exit_names: list[str] = Field(description='per exit: "ic1" … "ic4", then "final"')
    ic_head: str | None = Field(description="the internal classifiers' layers, in words; null for one exit")
    ic_head_kind: IcHeadKind | None = Field(
        description="paper (conv, then pool) or pooled (pool first: the cheap head); null for one exit. "
        "Absent in files written before it existed: paper where there is an IC head"
    )
    ic_pool_sizes: list[int] = Field(description="per internal classifier, its pooled side; [] for one exit")
    final_head: str = Field(description="the final head's layers, in words")
    served: Literal["early_exit", "final_exit"] = Field(
        description="early_exit: a sample leaves at the first confident exit; final_exit: the final head decides"
    )

    @model_validator(mode="before")
    @classmethod
    def _older_files_have_the_paper_head(cls, data: object) -> object:
        """A file written before ``ic_head_kind`` existed has the paper's head wherever it has ICs."""
        if isinstance(data, dict) and "ic_head_kind" not in data:
            return {**data, "ic_head_kind": None if data.get("ic_head") is None else DEFAULT_IC_HEAD}
        return data

    @model_validator(mode="after")
    def _kind_with_head(self) -> Architecture:
        if (self.ic_head_kind is None) != (self.ic_head is None):
            raise ValueError("ic_head_kind is null exactly when there is no ic_head (one exit)")
        return self


class InputSpec(Section):
    """The graphs' input tensor. Only square float32 NCHW images with 1 or 3 channels are served."""

    name: Literal["image"] = "image"
    layout: Literal["NCHW"] = "NCHW"
    dtype: Literal["float32"] = "float32"
    channels: Literal[1, 3]
    height: int = Field(ge=1)
    width: int = Field(ge=1)


class OutputSpec(Section):
    """Each graph output holds logits: ``(batch, exits)`` for a binary task (one logit per exit, as
    format 1 always had), ``(batch, exits, width)`` for multiclass and multilabel tasks."""

    kind: Literal["logit"] = "logit"
    probability: Literal["sigmoid(logit)", "softmax(logits)", "sigmoid(logit) per finding"] = "sigmoid(logit)"
    positive_label: Literal[1] | None = Field(default=1, description="binary: label 1; null otherwise")
    width: int = Field(default=1, ge=1, description="logits per exit: 1 (binary), K classes or F findings")


class Decision(Section):
    """How a multiclass or multilabel model's probabilities become a decision (binary models use
    ``operating_threshold``). ``argmax``: the most probable class; ``argmax of p / class threshold``:
    the class with the largest ``p_c / t_c`` (``app.modelpkg.task.multiclass_decision``);
    ``per-finding threshold``: finding ``f`` is present when ``p_f >= t_f``."""

    rule: Literal["argmax", "argmax of p / class threshold", "per-finding threshold"]
    thresholds: list[Probability] | None = Field(
        description="per class (the class-threshold rule) or per finding, in logit order; null for argmax"
    )
    threshold_rules: list[ThresholdRule] | None = Field(
        default=None, description="multilabel: how each finding's threshold was chosen on validation"
    )
    chosen_on: Literal["val"] = "val"


class ExitCandidate(Section):
    """One θ examined on validation. ``auc``/``pfd`` per task: binary AUC and PFD; multiclass macro
    one-vs-rest AUC and mean one-vs-rest PFD; multilabel mean per-finding AUC and PFD."""

    theta: float | None = Field(description="shared confidence threshold; null: no early exit")
    auc: float | None = Field(description="validation AUC of the served scores; null if undefined")
    pfd: float | None = Field(description="validation PFD over the training groups; null if undefined")
    mean_compute: float = Field(ge=0, description="mean fraction of the full network's multiply-adds")
    macro_f1: float | None = Field(default=None, description="multiclass: validation macro F1 (argmax); else null")
    eopp1: float | None = Field(default=None, description="multiclass: validation Eopp1 over the training groups")


class ExitPolicy(Section):
    """How a sample leaves early and how θ was chosen (docs/methods.md, early-exit inference)."""

    confidence: Literal["max(p, 1 - p)", "max softmax", "min over findings of max(p, 1 - p)"] = Field(
        default="max(p, 1 - p)", description="app.modelpkg.task.CONFIDENCE_RULES: binary, multiclass, multilabel"
    )
    rule: Literal["leave at the first exit whose confidence >= its threshold; otherwise the final exit"] = (
        "leave at the first exit whose confidence >= its threshold; otherwise the final exit"
    )
    shared_threshold: bool = Field(default=True, description="one θ for every internal classifier")
    criterion: Literal["min_pfd", "min_compute"] = Field(
        description="min_pfd: the smallest fairness gap (PFD; multiclass Eopp1); min_compute: the least compute"
    )
    auc_tolerance: float = Field(
        ge=0, description="candidates keep AUC (multiclass: macro F1) within this of the final exit's"
    )
    grid: list[float] = Field(description="the θ values examined (plus no early exit)")
    candidates: list[ExitCandidate] = Field(description="every candidate examined; [] for single-exit models")
    chosen_on: Literal["val"] = "val"


class TrainingGroups(Section):
    attributes: list[str] = Field(description="the sensitive attributes whose (intersection) cells are groups")
    labels: list[str] = Field(description="the training groups, in code order")


class ValidationSummary(Section):
    """Metrics of the served output on the validation split (null: undefined there). For a multiclass
    or multilabel task ``auc`` is the macro one-vs-rest / mean per-finding AUC, ``pf`` each group's PF
    averaged over the classes/findings, ``pfd`` the mean of the per-class/per-finding PFDs, and
    ``tpr``/``fpr`` the decision's rates averaged over the classes/findings."""

    auc: float | None
    auc_final_exit: float | None
    exit_auc: list[float | None]
    pf: dict[str, float | None] = Field(description="positive fraction per training group")
    pfd: float | None
    tpr: float | None
    fpr: float | None
    exit_rate: list[float] = Field(description="share of samples leaving at each exit")
    mean_compute: float
    accuracy: float | None = Field(default=None, description="multiclass: accuracy of the decision; else null")
    macro_f1: float | None = Field(default=None, description="multiclass: macro F1 of the decision; else null")
    eopp1: float | None = Field(default=None, description="multiclass: Eopp1 over the training groups; else null")


class EpochSummary(Section):
    epoch: int = Field(ge=0)
    losses: dict[str, float | None] = Field(
        description='mean per term: "bce" (multiclass "ce"), one per fairness term ("hinge" for pairwise_eo, '
        '"hsic", "mfd"), "total"'
    )
    val_auc: float | None
    val_pfd: float | None
    val_exit_auc: list[float | None]
    lr: float
    seconds: float = Field(ge=0)
    images_per_s: float = Field(ge=0)
    val_accuracy: float | None = Field(default=None, description="multiclass: final exit, argmax; else null")
    val_macro_f1: float | None = Field(default=None, description="multiclass: final exit, argmax; else null")
    val_eopp1: float | None = Field(default=None, description="multiclass: final exit, training groups; else null")


class TermRecord(Section):
    """A fairness term a run trained with (docs/methods.md, "Fairness terms")."""

    name: str = Field(description="pairwise_eo, hsic or mfd")
    weight: float = Field(description="λ: the term's loss is added as λ · loss at every trained exit")
    settings: dict[str, JsonValue] = Field(default_factory=dict, description="the term's own settings")


class TrainingRecord(Section):
    config: dict[str, JsonValue] = Field(description="the TrainingConfig as run, every field (image_size filled in)")
    seed: int
    device: str = Field(description='"cpu" or "cuda…"')
    mixed_precision: str | None = Field(description='"bfloat16", "float16" or null')
    selection: str = Field(description="which epoch's weights were kept")
    best_epoch: int = Field(ge=0)
    epochs_run: int = Field(ge=1)
    stopped_early: bool
    groups: TrainingGroups
    validation: ValidationSummary
    history: list[EpochSummary]
    pairwise_eo_extension: str | None = Field(
        default=None,
        description="multiclass/multilabel with a pairwise method: how the binary hinge was extended "
        "(one-vs-rest, hinges averaged; not in the paper); else null",
    )
    terms: list[TermRecord] = Field(
        default_factory=list,
        description="the fairness terms trained with (absent in files written before terms existed: "
        "read from the config's method then)",
    )


class ModelDescription(Section):
    """Everything but the files: what the trainer hands the exporter.

    Every key is required in the file (``null`` where allowed); only the nested constants (layout,
    decision rule, formula, …) have defaults, their one legal value. ``operating_threshold_rule``
    (binary models only: a multiclass or multilabel model records its rules in ``decision``),
    ``exit_policy`` and ``training`` record a training run; a folder exported from a network this
    service did not train (a seeded network in a benchmark or test) has all of them ``null``, never
    only some.
    """

    format_version: Literal[1] = Field(description="this layout; readers refuse others")
    version: str = Field(min_length=1, description="the model version id (the folder's name)")
    created_at: AwareDatetime = Field(description="when the folder was written (UTC)")
    method: str = Field(
        description="erm, pairwise_eo, fair_multi_exit or fair_multi_exit_pairwise_eo, or for a run given as "
        "terms multi_exit+<terms> / single_exit+<terms> (e.g. multi_exit+hsic)"
    )
    task: Task = Field(default_factory=Task, description="binary when absent (files written before it existed)")
    architecture: Architecture
    input: InputSpec
    preprocessing: Preprocessing
    output: OutputSpec
    exit_costs: list[float] = Field(description="per exit, fraction of the final exit's multiply-adds (last 1.0)")
    exit_macs: list[int] = Field(description="per exit, conv + linear multiply-adds per sample")
    operating_threshold: float | None = Field(
        description="binary: a sample is labelled 1 when its probability >= this; null for other tasks"
    )
    operating_threshold_rule: ThresholdRule | None
    decision: Decision | None = Field(default=None, description="multiclass and multilabel only")
    exit_thresholds: list[Probability | None] = Field(
        description="θ per exit; null: never leave there; the last is always null, all null for one exit"
    )
    exit_policy: ExitPolicy | None
    training: TrainingRecord | None

    @model_validator(mode="after")
    def _consistent(self) -> ModelDescription:
        n = self.architecture.n_exits
        per_exit: dict[str, Sequence[object]] = {
            "exit_thresholds": self.exit_thresholds,
            "exit_costs": self.exit_costs,
            "exit_macs": self.exit_macs,
            "architecture.exit_stage": self.architecture.exit_stage,
            "architecture.exit_names": self.architecture.exit_names,
        }
        wrong = [f"{key} has {len(values)}" for key, values in per_exit.items() if len(values) != n]
        if wrong:
            raise ValueError(f"architecture.n_exits is {n} but " + ", ".join(wrong))
        if self.exit_thresholds[-1] is not None:
            raise ValueError("the final exit's threshold must be null: the final exit decides what is left")
        if (self.architecture.served == "early_exit") != (n > 1):
            raise ValueError(f"architecture.served {self.architecture.served} does not fit {n} exit(s)")
        self._task_fits()
        spec, prep = self.input, self.preprocessing
        if spec.height != spec.width:
            raise ValueError("input must be square (height == width)")
        if (prep.resize.height, prep.resize.width) != (spec.height, spec.width) or prep.channels != spec.channels:
            raise ValueError("preprocessing (resize, channels) does not produce the input's shape")
        if self.task.kind == "binary":
            provenance: tuple[object, ...] = (self.operating_threshold_rule, self.exit_policy, self.training)
            if any(p is None for p in provenance) and any(p is not None for p in provenance):
                raise ValueError("operating_threshold_rule, exit_policy and training come together, or not at all")
        else:
            if self.operating_threshold_rule is not None:
                raise ValueError(
                    f"a {self.task.kind} model has no operating_threshold_rule (its decision has the rules)"
                )
            if (self.exit_policy is None) != (self.training is None):
                raise ValueError("exit_policy and training come together, or not at all")
        return self

    def _task_fits(self) -> None:
        task, decision = self.task, self.decision
        if self.output.width != task.width:
            raise ValueError(f"output.width is {self.output.width} but the {task.kind} task has {task.width} output(s)")
        expected = {
            "binary": "sigmoid(logit)",
            "multiclass": "softmax(logits)",
            "multilabel": "sigmoid(logit) per finding",
        }
        if self.output.probability != expected[task.kind]:
            raise ValueError(f"output.probability of a {task.kind} task is {expected[task.kind]!r}")
        if (self.output.positive_label is None) != (task.kind != "binary"):
            raise ValueError("output.positive_label is 1 for a binary task and null otherwise")
        if self.exit_policy is not None and self.exit_policy.confidence != task.confidence_rule:
            raise ValueError(f"exit_policy.confidence of a {task.kind} task is {task.confidence_rule!r}")
        if task.kind == "binary":
            if self.operating_threshold is None or decision is not None:
                raise ValueError("a binary model has an operating_threshold and no decision")
            return
        if self.operating_threshold is not None or decision is None:
            raise ValueError(f"a {task.kind} model has a decision and a null operating_threshold")
        allowed = {"multiclass": ("argmax", "argmax of p / class threshold"), "multilabel": ("per-finding threshold",)}[
            task.kind
        ]
        if decision.rule not in allowed:
            raise ValueError(f"decision.rule of a {task.kind} task is one of {', '.join(allowed)}")
        if (decision.thresholds is None) != (decision.rule == "argmax"):
            raise ValueError("decision.thresholds is null exactly for the argmax rule")
        if decision.thresholds is not None and len(decision.thresholds) != task.width:
            raise ValueError(f"decision.thresholds has {len(decision.thresholds)} entries for {task.width} outputs")
        if decision.threshold_rules is not None and (
            task.kind != "multilabel" or len(decision.threshold_rules) != task.width
        ):
            raise ValueError("decision.threshold_rules lists one rule per finding, for multilabel tasks only")


class GraphSpec(Section):
    """One exported graph: its file, input/output names and the exits whose logits it returns."""

    file: FileName
    inputs: tuple[str, ...] = Field(min_length=1)
    outputs: tuple[str, ...] = Field(min_length=1)
    exits: tuple[int, ...] = Field(min_length=1, description="exits whose logit columns it returns, in order")


class Graphs(Section):
    stages: list[GraphSpec] = Field(min_length=1, description="chained in order; stage j+1 reads next_features")
    full: GraphSpec = Field(description="every exit at once")
    batch_dimension: Literal["dynamic"] = "dynamic"


class ParityDiffs(Section):
    stage: float = Field(ge=0)
    chain: float = Field(ge=0)
    full: float = Field(ge=0)


class Parity(Section):
    max_abs_prob_diff: ParityDiffs = Field(description="worst |ONNX Runtime − PyTorch| probability per check")
    tolerance: float = Field(gt=0)
    batches: list[int] = Field(description="batch sizes checked")


class FileEntry(Section):
    sha256: Sha256
    bytes: int = Field(ge=0)


class Versions(Section):
    python: str
    torch: str
    onnx: str
    onnxruntime: str
    opset: dict[str, int] = Field(description="ONNX operator set per domain")


class ModelManifest(ModelDescription):
    """``model.json`` as written by ``app.training.export`` and read by serving and evaluation."""

    graphs: Graphs
    parity: Parity
    files: dict[FileName, FileEntry] = Field(description="every file of the folder but model.json")
    versions: Versions

    @model_validator(mode="after")
    def _graphs_fit(self) -> ModelManifest:
        n = self.architecture.n_exits
        chained = [e for spec in self.graphs.stages for e in spec.exits]
        if chained != list(range(n)) or list(self.graphs.full.exits) != list(range(n)):
            raise ValueError(f"graphs must return exits 0..{n - 1} in order (stages: {chained})")
        if self.graphs.stages[0].inputs[0] != self.input.name or self.graphs.full.inputs[0] != self.input.name:
            raise ValueError(f"the first stage graph and the full graph must read {self.input.name!r}")
        unlisted = {s.file for s in [*self.graphs.stages, self.graphs.full]} - set(self.files)
        if unlisted:
            raise ValueError(f"graph files missing from files: {', '.join(sorted(unlisted))}")
        if MANIFEST_FILE in self.files:
            raise ValueError(f"files must not list {MANIFEST_FILE} (its hash is kept outside it)")
        return self

    def to_json(self) -> str:
        """The file's text: two-space indent, keys in field order; JSON has no NaN (refused on write)."""
        return json.dumps(self.model_dump(mode="json"), indent=2, allow_nan=False)


def parse_manifest(data: bytes | str, source: str) -> ModelManifest:
    """``ModelManifest`` from ``model.json``'s bytes; ``ManifestError`` naming ``source`` and each problem."""
    try:
        return ModelManifest.model_validate_json(data)
    except ValidationError as exc:
        problems = [_describe(e) for e in exc.errors(include_url=False)]
        shown = "; ".join(problems[:MAX_REPORTED_ERRORS])
        more = f" (and {len(problems) - MAX_REPORTED_ERRORS} more)" if len(problems) > MAX_REPORTED_ERRORS else ""
        raise ManifestError(
            f"{source} is not a model manifest this service can use (format_version {FORMAT_VERSION}): {shown}{more}"
        ) from None


def _describe(error: ErrorDetails) -> str:
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])
