"""How an operating threshold is chosen: the rule a training or audit config states, and the record
``model.json`` keeps of the choice (``ThresholdRule``).

One shape for both, so what a user asked for is what the model says it got. Lives in the model
format because training writes it and audits, reports and model cards read it; the numbers behind it
are the metrics engine's (``app.fairness.engine.thresholds``). Keys added after format version 1 was
first written have defaults, so older ``model.json`` files still load (``docs/model-format.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from app.modelpkg.base import Section

RuleName = Literal["youden", "target_specificity", "target_sensitivity", "constrained"]


class ThresholdConstraint(Section):
    """The band of the ``constrained`` rule: every held group's FPR and TPR at the threshold must meet
    each limit that is set (at least one). Held: the group has at least ``min_group_count``
    positives and as many negatives on the split the threshold is chosen on."""

    attribute: str | None = Field(
        default=None,
        max_length=128,
        description="the attribute whose groups are held to the band; null: the training groups "
        "(an audit: the intersection of its sensitive attributes)",
    )
    fpr_band: float | None = Field(default=None, gt=0, le=1, description="max − min FPR across held groups ≤ this")
    tpr_band: float | None = Field(default=None, gt=0, le=1, description="max − min TPR across held groups ≤ this")
    max_fpr: float | None = Field(default=None, ge=0, lt=1, description="every held group's FPR ≤ this")
    min_tpr: float | None = Field(default=None, gt=0, le=1, description="every held group's TPR ≥ this")
    min_group_count: int = Field(default=10, ge=1, le=1_000_000, description="positives and negatives to be held")
    on_infeasible: Literal["fail", "youden"] = Field(
        default="fail",
        description="when no threshold meets the band: fail (the default), or take Youden's threshold and "
        "record constraint_met false",
    )

    @model_validator(mode="after")
    def _some_limit(self) -> ThresholdConstraint:
        if all(v is None for v in (self.fpr_band, self.tpr_band, self.max_fpr, self.min_tpr)):
            raise ValueError("set at least one of fpr_band, tpr_band, max_fpr, min_tpr")
        return self


def grouped_by(constraint: ThresholdConstraint | None, default: Sequence[str]) -> list[str]:
    """The attributes whose (intersection) groups an operating point is reported for: the
    constraint's attribute, else ``default`` (the training groups, an audit's attributes)."""
    return [constraint.attribute] if constraint and constraint.attribute else list(default)


def rule_field_errors(
    rule: str | None,
    target_specificity: float | None,
    target_sensitivity: float | None,
    constraint: ThresholdConstraint | None,
) -> list[tuple[str, str]]:
    """(field, message) for each parameter missing from its rule or given to another rule."""
    errors = []
    for name, value in (
        ("target_specificity", target_specificity),
        ("target_sensitivity", target_sensitivity),
        ("threshold_constraint", constraint),
    ):
        own = "constrained" if name == "threshold_constraint" else name
        if rule == own and value is None:
            errors.append((name, f"threshold_rule {own!r} needs {name}"))
        elif rule != own and value is not None:
            errors.append((name, f"{name} applies to threshold_rule {own!r} only (the rule is {rule!r})"))
    return errors


def raise_field_errors(title: str, errors: list[tuple[str, str]]) -> None:
    """Raise pydantic's ``ValidationError`` located at each named field (a model validator's own
    errors would point at the whole model, and the API names the field)."""
    if errors:
        raise ValidationError.from_exception_data(
            title,
            [
                InitErrorDetails(type=PydanticCustomError("threshold_rule", message), loc=(field,), input=None)
                for field, message in errors
            ],
        )


class GroupRate(Section):
    """One group at the chosen threshold, on the split it was chosen on."""

    group: str
    n_pos: int = Field(ge=0)
    n_neg: int = Field(ge=0)
    tpr: float | None = Field(description="null: the group has no positives")
    fpr: float | None = Field(description="null: the group has no negatives")
    held: bool | None = Field(description="constrained rule: held to the band (enough samples); else null")


class OperatingPointRecord(Section):
    grouped_by: list[str] = Field(description="the attribute(s) whose (intersection) cells the groups are")
    groups: list[GroupRate]
    thresholds_examined: int | None = Field(default=None, description="constrained rule: candidate thresholds")
    thresholds_in_band: int | None = Field(default=None, description="constrained rule: of those, in band")


class ThresholdRule(Section):
    """How ``operating_threshold`` was chosen (on the validation split, after the exit thresholds)."""

    rule: RuleName
    target_specificity: float | None = Field(gt=0, lt=1, description="for rule target_specificity")
    target_sensitivity: float | None = Field(default=None, gt=0, le=1, description="for rule target_sensitivity")
    constraint: ThresholdConstraint | None = Field(default=None, description="for rule constrained")
    constraint_met: bool | None = Field(
        default=None, description="constrained rule: whether the threshold keeps the held groups in band"
    )
    fallback: Literal["youden"] | None = Field(
        default=None, description="the rule that chose the threshold when the band could not be met"
    )
    operating_point: OperatingPointRecord | None = Field(
        default=None, description="every group's TPR and FPR at the threshold on validation; null in older files"
    )
    decision: Literal["probability >= operating_threshold"] = "probability >= operating_threshold"
    chosen_on: Literal["val"] = "val"

    @model_validator(mode="after")
    def _consistent(self) -> ThresholdRule:
        """Refuses a record that contradicts itself; tolerates a stray ``target_specificity`` beside
        another rule, which configs allowed before issue 13 (older files carry it)."""
        needs = {"target_specificity": self.target_specificity, "target_sensitivity": self.target_sensitivity}
        if self.rule in needs and needs[self.rule] is None:
            raise ValueError(f"rule {self.rule} needs {self.rule}")
        if (self.rule == "constrained") != (self.constraint is not None):
            raise ValueError("constraint is recorded for rule constrained, and only for it")
        if self.constraint is None:
            if self.constraint_met is not None or self.fallback is not None:
                raise ValueError("constraint_met and fallback belong to rule constrained")
        elif self.constraint_met is None or (self.fallback is not None) == self.constraint_met:
            raise ValueError("a constrained rule records constraint_met, and a fallback exactly when it is false")
        return self
