"""The model card of a multi-class or multi-label evaluation: the task, its classes or findings, the
decision rule and thresholds, and the report's headline numbers; a binary card has no task block."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import TypeAdapter
from synth import simulate
from task_reports import multiclass_report, multilabel_report

from app.fairness.engine import build_report
from app.fairness.model_card import ModelCard, model_card
from app.fairness.models import Evaluation

CARD = TypeAdapter(ModelCard)


def card_of(report: dict) -> dict:
    evaluation = Evaluation(
        id="evl_test",
        organisation_id="org",
        kind="audit",
        name="external predictions",
        config={},
        metric_definition_version=report["metric_definition_version"],
        report=report,
        created_at=datetime(2026, 12, 2, tzinfo=UTC),
    )
    card = model_card(evaluation, None)
    return CARD.dump_python(CARD.validate_python(card), mode="json")


def by_type_and_slice(card: dict) -> dict[tuple[str, str], dict]:
    return {(m["type"], m["slice"]): m for m in card["quantitative_analysis"]["performance_metrics"]}


@pytest.mark.parametrize("thresholds", [None, [0.5, 0.3, 0.2]], ids=["argmax", "class thresholds"])
def test_multiclass_card_names_the_classes_rule_and_headline_numbers(thresholds: list[float] | None) -> None:
    report = multiclass_report(3, n=1200, seed=4, class_thresholds=thresholds)
    card = card_of(report)
    rule = "argmax" if thresholds is None else "argmax of p / class threshold"
    assert card["fairaudit"]["task"] == {
        "kind": "multiclass",
        "classes": report["classes"],
        "decision": {"rule": rule, "thresholds": thresholds},
    }
    limits = card["fairaudit"]["thresholds"]
    assert limits["operating"] is None and limits["operating_point"] == [] and limits["rule_record"] is None
    assert limits["rule"].endswith("p / class threshold" if thresholds else "probability")
    metrics = by_type_and_slice(card)
    policy = next(e for e in report["evaluations"] if e["exit"] == "policy")["groupings"]
    vi = next(g for g in policy[1]["groups"] if g["group"] == "VI")["metrics"]["macro_f1"]
    assert metrics[("macro_f1", "skin_type=VI")]["value"] == f"{vi['value']:.4f}"
    assert metrics[("macro_f1", "skin_type=VI")]["confidence_interval"]["lower_bound"] == f"{vi['ci_low']:.4f}"
    eopp1 = policy[1]["gaps"]["eopp1"]
    assert metrics[("eopp1", "skin_type (gap)")]["value"] == f"{eopp1['value']:.4f}"
    assert ("accuracy", "overall") in metrics and not any(m[0] in ("auc", "pf") for m in metrics)
    flagged = [f for f in report["summary"]["findings"] if f["excludes_zero"]]
    assert flagged, "the planted skin-type gap"
    assert [a["harms"] for a in card["considerations"]["fairness_assessment"]] == [
        f"{f['gap']} = {f['value']}" for f in flagged
    ]
    assert card["considerations"]["limitations"] == [{"description": report["summary"]["verdict"]}]


def test_multilabel_card_gives_each_finding_its_numbers_threshold_and_operating_point() -> None:
    findings = ["Effusion", "Edema"]
    report = multilabel_report(findings)
    card = card_of(report)
    assert card["fairaudit"]["task"] == {
        "kind": "multilabel",
        "classes": findings,
        "decision": {"rule": "per-finding threshold", "thresholds": [0.5, 0.5]},
    }
    metrics = by_type_and_slice(card)
    for name in findings:
        overall = report["per_finding"][name]["evaluations"][-1]["groupings"][0]["groups"][0]["metrics"]["auc"]
        assert metrics[("auc", f"{name}: overall")]["value"] == f"{overall['value']:.4f}"
        assert (("eopp1", f"{name}: skin_type (gap)")) in metrics
    points = card["fairaudit"]["thresholds"]["operating_point"]
    assert {p["finding"] for p in points} == set(findings)
    assert len(points) == sum(
        len(g["groups"]) for name in findings for g in report["per_finding"][name]["evaluations"][-1]["groupings"]
    )
    assert [x["description"] for x in card["considerations"]["limitations"]] == [
        f"{name}: {report['per_finding'][name]['summary']['verdict']}" for name in findings
    ]
    assert all(a["harms"].split(": ")[0] in findings for a in card["considerations"]["fairness_assessment"])


def test_binary_card_has_no_task_block() -> None:
    card = card_of(build_report(simulate(400, 1), attributes=["sex"], n_boot=10))
    assert "task" not in card["fairaudit"]
    assert all("finding" not in p for p in card["fairaudit"]["thresholds"]["operating_point"])
    assert ("auc", "sex=F") in by_type_and_slice(card)
