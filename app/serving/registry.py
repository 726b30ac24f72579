"""Finding model versions by id or alias, and moving aliases. Never commits.

Addressing: wherever a model id is accepted, an alias name is too. Model version ids always start
with ``mdl_``; alias names are lowercase letters, digits and hyphens (``production``, ``shadow-2``),
start with a letter and cannot contain ``_``, so the two can never be confused: a reference starting
with ``mdl_`` is an id, anything else an alias of the caller's organisation.

Stage: ``promoted`` while at least one alias points to a version, ``candidate`` otherwise.

Every move of an alias adds an ``AliasChange`` row (who, from, to, the gate's result, an override's
reason); which moves are allowed is the deployment gate's business (``app.gates``), not the registry's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NoReturn

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import ConflictError, InputError, NotFoundError
from app.core.repository import OrgScopedRepository
from app.fairness.models import Evaluation
from app.jobs.repository import JOBS
from app.serving.models import AliasChange, ModelAlias, ModelVersion

MODEL_ID_PREFIX = "mdl_"
MODEL_REF = "a model version id (mdl_…) or an alias name of your organisation (e.g. production)"
ALIAS_PATTERN = re.compile(r"[a-z][a-z0-9-]{0,63}")
RESERVED_ALIASES = frozenset({"aliases"})  # a path segment of the API under /v1/models
ACTIVE_JOB_STATUSES = ("queued", "running")
MODELS = OrgScopedRepository(ModelVersion, "model version")
ALIAS_HISTORY = OrgScopedRepository(AliasChange, "alias change")


def check_alias_name(name: str) -> None:
    if not ALIAS_PATTERN.fullmatch(name) or name in RESERVED_ALIASES:
        raise InputError(
            f"invalid alias name {name!r}: use 1-64 lowercase letters, digits and hyphens, starting with a "
            "letter (no '_', so an alias can never look like a model id)",
            status=422,
        )


def resolve(session: Session, organisation_id: str, ref: str) -> tuple[ModelVersion, str | None]:
    """The version ``ref`` names (an id or an alias) and the alias used, if any.

    A version whose training job is still queued or running does not exist yet: 409 saying so (the
    caller can wait for the job); unknown ids and aliases, and other organisations' ones, are 404.
    """
    if ref.startswith(MODEL_ID_PREFIX):
        model = MODELS.find(session, organisation_id, ref)
        if model is None:
            _explain_missing(session, organisation_id, ref)
        return model, None
    model = session.get(ModelVersion, alias_target(session, organisation_id, ref))
    assert model is not None  # foreign key
    return model, ref


# Built once: every prediction that names an alias runs it.
_ALIAS_TARGET = select(ModelAlias.model_version_id, ModelAlias.override_reason).where(
    ModelAlias.organisation_id == bindparam("organisation_id"), ModelAlias.name == bindparam("name")
)


def alias_target(session: Session, organisation_id: str, name: str) -> str:
    """The model version id an alias of the organisation points to (404 if there is no such alias)."""
    return alias_lookup(session, organisation_id, name)[0]


def alias_lookup(session: Session, organisation_id: str, name: str) -> tuple[str, str | None]:
    """The version an alias points to and, if an admin put it there against a failed gate, the reason
    they gave (404 if there is no such alias)."""
    row = session.execute(_ALIAS_TARGET, {"organisation_id": organisation_id, "name": name}).first()
    if row is None:
        raise NotFoundError("model alias", name)
    return row[0], row[1]


def current_target(session: Session, organisation_id: str, name: str) -> str | None:
    """The version an alias points to now, or ``None`` while it does not exist."""
    row = session.execute(_ALIAS_TARGET, {"organisation_id": organisation_id, "name": name}).first()
    return None if row is None else row[0]


def _explain_missing(session: Session, organisation_id: str, model_id: str) -> NoReturn:
    job = session.scalar(JOBS.query(organisation_id, model_version_id=model_id))
    if job is not None and job.status in ACTIVE_JOB_STATUSES:
        raise ConflictError(
            f"model version {model_id} does not exist yet: its training job {job.id} is {job.status}; "
            f"it is registered when the job succeeds (GET /v1/jobs/{job.id})"
        )
    raise NotFoundError("model version", model_id)


def aliases_of(session: Session, organisation_id: str, model_ids: Sequence[str]) -> dict[str, list[str]]:
    rows = session.execute(
        select(ModelAlias.model_version_id, ModelAlias.name)
        .where(ModelAlias.organisation_id == organisation_id, ModelAlias.model_version_id.in_(model_ids))
        .order_by(ModelAlias.name)
    )
    out: dict[str, list[str]] = {}
    for model_id, name in rows:
        out.setdefault(model_id, []).append(name)
    return out


def training_evaluations(session: Session, organisation_id: str, model_ids: Sequence[str]) -> dict[str, str]:
    """Model id → id of the evaluation its training job stored (test split)."""
    rows = session.execute(
        select(Evaluation.model_version_id, Evaluation.id).where(
            Evaluation.organisation_id == organisation_id,
            Evaluation.kind == "training",
            Evaluation.model_version_id.in_(model_ids),
        )
    )
    return {str(model_id): ident for model_id, ident in rows}


def set_alias(
    session: Session,
    organisation_id: str,
    name: str,
    target: ModelVersion,
    *,
    api_key_id: str | None,
    gate: str,
    gate_result: dict[str, Any],
    override_reason: str | None = None,
) -> tuple[ModelAlias, AliasChange]:
    """Point ``name`` at ``target`` (creating the alias if needed), update both versions' stages and
    record the move with the gate's result (``gate``: pass, fail, insufficient or "no policy")."""
    check_alias_name(name)
    alias = session.scalar(
        select(ModelAlias).where(ModelAlias.organisation_id == organisation_id, ModelAlias.name == name)
    )
    previous = alias.model_version_id if alias is not None else None
    try:
        with session.begin_nested():
            if alias is None:
                alias = ModelAlias(organisation_id=organisation_id, name=name, model_version_id=target.id)
                session.add(alias)
            alias.model_version_id, alias.override_reason = target.id, override_reason
    except IntegrityError:
        raise ConflictError(f"alias {name!r} was created by a concurrent request; retry") from None
    change = AliasChange(
        organisation_id=organisation_id,
        alias=name,
        from_model_id=previous,
        to_model_id=target.id,
        api_key_id=api_key_id,
        gate=gate,
        gate_result=gate_result,
        override_reason=override_reason,
    )
    session.add(change)
    target.stage = "promoted"
    if previous is not None and previous != target.id and not aliases_of(session, organisation_id, [previous]):
        old = session.get(ModelVersion, previous)
        if old is not None:
            old.stage = "candidate"
    session.flush()
    return alias, change


def promotions_of(session: Session, organisation_id: str, model_id: str, limit: int = 50) -> list[AliasChange]:
    """The latest alias moves that pointed an alias at ``model_id``, newest first."""
    return list(
        session.scalars(
            ALIAS_HISTORY.query(organisation_id, to_model_id=model_id)
            .order_by(AliasChange.created_at.desc(), AliasChange.id.desc())
            .limit(limit)
        )
    )
