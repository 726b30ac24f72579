"""Request and response bodies of policies, gates and alias moves."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.fields import ResourceRef, SafeName
from app.fairness.policy import CheckResult, Policy
from app.gates.models import ORGANISATION_SCOPE, FairnessPolicy
from app.serving.models import AliasChange

GateOutcome = Literal["pass", "fail", "insufficient", "no policy"]

_POLICY_EXAMPLE: dict[str, Any] = {
    "attributes": ["skin_tone"],
    "min_group_positives": 10,
    "checks": [
        {"check": "limit", "metric": "pfd", "attribute": "skin_tone", "max": 0.05, "on": "ci_high"},
        {"check": "group_band", "attribute": "skin_tone", "metric": "fpr", "max_spread": 0.2, "min_n": 20},
        {"check": "no_worsening", "metrics": ["auc", "pfd"], "attribute": "skin_tone", "alpha": 0.05},
        {"check": "max_drop", "metric": "auc", "max_drop": 0.02},
    ],
}


class PolicyIn(Policy):
    model_config = ConfigDict(json_schema_extra={"examples": [_POLICY_EXAMPLE]})

    cohort_id: ResourceRef | None = Field(
        default=None, description="a cohort whose attributes the policy's attributes must be (422 naming the missing)"
    )

    def policy(self) -> Policy:
        return Policy.model_validate(self.model_dump(exclude={"cohort_id"}))


class PolicyOut(BaseModel):
    id: str
    alias: str | None = Field(description="the alias it governs; null for the organisation-wide policy")
    version: int = Field(description="1 for the first; every change adds one, the old versions are kept")
    created_at: datetime
    api_key_id: str | None = Field(description="the key that wrote this version")
    cohort_id: str | None
    policy: Policy

    @classmethod
    def of(cls, row: FairnessPolicy) -> PolicyOut:
        return cls(
            id=row.id,
            alias=None if row.alias == ORGANISATION_SCOPE else row.alias,
            version=row.version,
            created_at=row.created_at,
            api_key_id=row.api_key_id,
            cohort_id=row.cohort_id,
            policy=Policy.model_validate(row.policy),
        )


class GateOut(BaseModel):
    """Whether a model may take an alias: the applicable policy's checks on its evaluation."""

    model_version_id: str
    alias: str
    outcome: GateOutcome = Field(description="pass only when every check passes; no policy passes")
    detail: str
    policy_id: str | None = Field(description="the policy version applied (the alias's, else the organisation's)")
    policy_version: int | None
    evaluation_id: str | None = Field(description="the candidate's evaluation checked (study, else training)")
    incumbent_model_id: str | None = Field(description="the model behind the alias now")
    incumbent_evaluation_id: str | None = Field(description="the incumbent's evaluation paired with the candidate's")
    n_matched: int | None = Field(description="samples both evaluations share (the paired comparison's)")
    missing_attributes: list[str] = Field(description="attributes the policy lists that the evaluation lacks")
    checks: list[CheckResult]


class PromotionIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"model_version_id": "mdl_3f2a9c41d0e7"},
                {"model_version_id": "mdl_3f2a9c41d0e7", "override_reason": "interim model approved by board 12/03"},
            ]
        }
    )

    model_version_id: ResourceRef = Field(description="a model version id (or another alias)")
    override_reason: SafeName | None = Field(
        default=None,
        description="admins only: promote although the gate fails, for this written reason (kept in the alias "
        "history, on the model card and in every prediction through the alias)",
    )


class AliasOut(BaseModel):
    name: str
    model_version_id: str
    created_at: datetime
    override_reason: str | None
    gate: GateOut


class AliasChangeOut(BaseModel):
    id: str
    alias: str
    created_at: datetime
    from_model_id: str | None
    to_model_id: str
    api_key_id: str | None = Field(description="the key that moved the alias")
    gate: str = Field(description='pass, fail, insufficient, or "no policy" (moves before gates: "no policy")')
    override_reason: str | None
    gate_result: GateOut | None

    @classmethod
    def of(cls, row: AliasChange) -> AliasChangeOut:
        data = {name: getattr(row, name) for name in cls.model_fields if name != "gate_result"}
        return cls(**data, gate_result=GateOut.model_validate(row.gate_result) if row.gate_result else None)


class AliasHistory(BaseModel):
    items: list[AliasChangeOut]
    next_cursor: str | None
