"""Live monitoring of a served model, from the aggregates (``app.serving.aggregates``) only: the
demographic mix and exit counts of the window's predictions, subgroup metrics with intervals of its
outcomes (``app.fairness.engine.live``; per class or finding for multiclass and multilabel models,
``app.serving.class_monitoring``), and score and exit-rate drift against the model's audit
(``app.serving.drift``). Its cost grows with days × groups × score bins, not with predictions."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.fairness.engine.live import GroupCounts, gaps, group_metrics
from app.serving import aggregates
from app.serving.aggregates import ALL, EVERYONE, N_SCORE_BINS, OVERALL
from app.serving.class_monitoring import ClassCounts, finding_counts, multiclass_groupings
from app.serving.class_monitoring import Groups as ClassGroups
from app.serving.drift import audit_counts, drift
from app.serving.models import ModelVersion, MonitoringCell, Prediction
from app.serving.runtime import ModelFiles, is_binary, manifest_of
from app.serving.schemas import (
    ClassGrouping,
    DemographicMix,
    FindingMonitoring,
    GroupCount,
    LiveGrouping,
    MonitoringOut,
    MulticlassMonitoringOut,
    MultilabelMonitoringOut,
    WindowOut,
)
from app.settings import Settings

CONFIDENCE = 0.95
Groups = dict[tuple[str, str], GroupCounts]


@dataclass(frozen=True)
class Window:
    """Which predictions and outcomes count: those of the last ``days`` UTC days (today included), or
    the model's last ``last_outcomes`` outcomes (with every prediction), or, with neither, all. Not
    both: the aggregates keep days and outcome blocks apart (``app.serving.aggregates``)."""

    days: int | None = None
    last_outcomes: int | None = None

    def __post_init__(self) -> None:
        if self.days is not None and self.last_outcomes is not None:
            raise ValueError("a window is the last days or the last outcomes, not both")


@dataclass(frozen=True)
class LiveCounts:
    predictions: Groups
    outcomes: Groups  # binary models
    classes: ClassGroups = field(default_factory=dict)  # multiclass and multilabel models

    def add_outcome(self, attribute: str, group: str, cell: str, count: int) -> None:
        if aggregates.is_class_cell(cell):
            self.classes.setdefault((attribute, group), ClassCounts()).add(cell, count)
        else:
            self.outcomes.setdefault((attribute, group), GroupCounts(N_SCORE_BINS)).add(cell, count)


def live_counts(session: Session, model: ModelVersion, window: Window, now: datetime | None = None) -> LiveCounts:
    """The window's counts per (attribute, group): exact, from whole buckets plus, for a
    ``last_outcomes`` window, the outcome rows of its oldest block that fall inside it."""
    c = MonitoringCell
    every_block = (c.block == ALL).label("every_block")
    query = select(every_block, c.attribute, c.group, c.cell, func.sum(c.count)).where(c.model_version_id == model.id)
    query = query.group_by(every_block, c.attribute, c.group, c.cell)
    first_seq = first_whole_block = 0
    if window.days is not None:
        query = query.where(c.day >= aggregates.day_of(now or utcnow()) - window.days + 1, c.block == ALL)
    elif window.last_outcomes is not None:
        first_seq = max((model.last_outcome_seq or 0) - window.last_outcomes + 1, 1)
        # the first block wholly inside the window (block 0 holds numbers 1..BLOCK-1: there is no outcome 0)
        first_whole_block = 0 if first_seq <= 1 else -(-first_seq // aggregates.BLOCK)
        query = query.where(c.day == ALL, (c.block == ALL) | (c.block >= first_whole_block))
    else:
        query = query.where(c.day == ALL, c.block == ALL)
    predictions: Groups = defaultdict(lambda: GroupCounts(N_SCORE_BINS))
    counts = LiveCounts(predictions, {})
    for all_blocks, attribute, group, cell, count in session.execute(query):
        if aggregates.is_prediction_cell(cell):
            predictions[attribute, group].add(cell, int(count))
        elif window.last_outcomes is None or not all_blocks:
            counts.add_outcome(attribute, group, cell, int(count))
    if first_seq > 1 and first_seq < first_whole_block * aggregates.BLOCK:
        partial = select(*aggregates.OUTCOME_COLUMNS).where(
            Prediction.model_version_id == model.id,
            Prediction.outcome_seq >= first_seq,
            Prediction.outcome_seq < first_whole_block * aggregates.BLOCK,
        )
        for row in session.execute(partial):
            for key, n in aggregates.row_outcome_counts(row).items():
                if key.day == ALL and key.block == ALL:
                    counts.add_outcome(key.attribute, key.group, key.cell, n)
    return LiveCounts(dict(predictions), counts.outcomes, counts.classes)


def live_groupings(counts: Groups, min_count: int) -> list[dict[str, Any]]:
    """Report-shaped groupings (``overall`` first, then each attribute) of the window's outcomes."""
    overall = counts.get((OVERALL, EVERYONE), GroupCounts(N_SCORE_BINS))
    n_overall = overall.n_outcomes
    attributes = sorted({a for a, _ in counts if a != OVERALL})
    out = []
    for attribute in [OVERALL, *attributes]:
        members = {g: c for (a, g), c in sorted(counts.items()) if a == attribute}
        metrics = {g: group_metrics(c, overall.neg, min_count, CONFIDENCE) for g, c in members.items()}
        groups = [
            {
                "group": g,
                "n": c.n_outcomes,
                "n_pos": c.c("tp", "fn"),
                "n_neg": c.c("fp", "tn"),
                "metrics": metrics[g],
            }
            for g, c in members.items()
        ]
        grouping: dict[str, Any] = {
            "attribute": attribute,
            "kind": "overall" if attribute == OVERALL else "attribute",
            "n_missing": n_overall - sum(c.n_outcomes for c in members.values()),
            "groups": groups,
        }
        if attribute != OVERALL:
            grouping["gaps"] = gaps(metrics)
        out.append(grouping)
    return out


def as_report(groupings: list[dict[str, Any]]) -> dict[str, Any]:
    """The live groupings in the shape of a fairness report's policy evaluation, which is what the
    policy checks read (``app.fairness.policy``)."""
    return {"evaluations": [{"exit": "policy", "groupings": groupings}]}


def monitor(
    session: Session, settings: Settings, organisation_id: str, model: ModelVersion, window: Window
) -> MonitoringOut:
    """The window's monitoring of ``model``; a multiclass or multilabel model's per class or finding
    (``app.serving.class_monitoring``), its names read from its verified ``model.json``."""
    counts = live_counts(session, model, window)
    everyone = counts.predictions.get((OVERALL, EVERYONE), GroupCounts(N_SCORE_BINS))
    n_exits = len(model.thresholds.get("exits") or [None])
    audit = audit_counts(session, settings, organisation_id, model.id)
    common: dict[str, Any] = {
        "model_id": model.id,
        "model_sha256": model.sha256,
        "window": WindowOut(days=window.days, last_outcomes=window.last_outcomes),
        "n_predictions": everyone.n,
        "exit_counts": [everyone.exits.get(k, 0) for k in range(max([n_exits, *(k + 1 for k in everyone.exits)]))],
        "demographics": _mix(counts, everyone.n),
        "drift": drift(counts.predictions, audit) if audit is not None else None,
    }
    min_count = settings.min_group_count
    if is_binary(model):
        n_outcomes = counts.outcomes.get((OVERALL, EVERYONE), GroupCounts(N_SCORE_BINS)).n_outcomes
        metrics = cast("list[LiveGrouping]", live_groupings(counts.outcomes, min_count)) if n_outcomes else None
        return MonitoringOut(**common, n_with_outcome=n_outcomes, status=_status(n_outcomes), metrics=metrics)
    task = manifest_of(ModelFiles.of(settings, model)).task
    n_outcomes = counts.classes.get((OVERALL, EVERYONE), ClassCounts()).n
    common.update(n_with_outcome=n_outcomes, status=_status(n_outcomes))
    if task.kind == "multiclass":
        groupings = multiclass_groupings(counts.classes, task.classes, min_count, CONFIDENCE) if n_outcomes else None
        return MulticlassMonitoringOut(
            **common, classes=task.classes, class_metrics=cast("list[ClassGrouping] | None", groupings)
        )
    findings = []
    for f, name in enumerate(task.classes):
        per_group = finding_counts(counts.classes, f)
        known = per_group.get((OVERALL, EVERYONE), GroupCounts(N_SCORE_BINS)).n_outcomes
        groupings = live_groupings(per_group, min_count) if known else None
        findings.append({"finding": name, "n_with_outcome": known, "metrics": groupings})
    return MultilabelMonitoringOut(
        **common, findings=task.classes, finding_metrics=cast("list[FindingMonitoring]", findings)
    )


def _status(n_outcomes: int) -> Literal["ok", "no_outcomes"]:
    return "ok" if n_outcomes else "no_outcomes"


def _mix(counts: LiveCounts, n: int) -> list[DemographicMix]:
    out = []
    for attribute in sorted({a for a, _ in counts.predictions if a != OVERALL}):
        groups = [
            GroupCount(group=g, n=c.n, fraction=c.n / n)
            for (a, g), c in sorted(counts.predictions.items())
            if a == attribute and c.n
        ]
        out.append(DemographicMix(attribute=attribute, groups=groups, n_missing=n - sum(g.n for g in groups)))
    return out
