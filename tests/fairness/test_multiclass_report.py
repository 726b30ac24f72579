"""The multi-class report against scikit-learn and Fairlearn, the paper's gaps by hand, statuses, the
binary report at K = 2, and the bootstrap's intervals."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from class_synth import class_grouping, simulate_classes
from fairlearn.metrics import MetricFrame, equalized_odds_difference, false_positive_rate, selection_rate
from fairlearn.metrics import true_positive_rate as fl_tpr
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from app.fairness.engine import MulticlassPredictionSet, PredictionSet, build_report

ATTRIBUTES = ["sex", "skin_type"]


def rare_class_set(seed: int = 4) -> MulticlassPredictionSet:
    """4 classes; class_3 only ever occurs in skin types I and II (absent elsewhere)."""
    p = simulate_classes(900, seed, k=4, skin_shift=0.8)
    y = p.y_true.copy()
    rare = (y == 3) & ~np.isin(np.asarray(p.groups["skin_type"]), ["I", "II"])
    y[rare] = 0
    return dataclasses.replace(p, y_true=y)


@pytest.fixture(scope="module")
def rare() -> tuple[MulticlassPredictionSet, dict]:
    p = rare_class_set()
    return p, build_report(p, attributes=ATTRIBUTES, n_boot=60, min_count=5)


def _members(p: MulticlassPredictionSet, attribute: str, label: str) -> np.ndarray:
    if attribute == "overall":
        return np.ones(len(p.y_true), dtype=bool)
    if "×" in attribute:
        levels = dict(part.split("=") for part in label.split(", "))
        return np.all([np.asarray(p.groups[a]) == v for a, v in levels.items()], axis=0)
    return np.asarray(p.groups[attribute]) == label


def test_group_metrics_equal_sklearn_over_the_classes_present(rare) -> None:
    p, report = rare
    pred = p.exit_probs[:, -1, :].argmax(axis=1)
    checked = 0
    for attribute in ("overall", "sex", "skin_type", "sex×skin_type"):
        for group in class_grouping(report, attribute)["groups"]:
            m = _members(p, attribute, group["group"])
            y, yhat = p.y_true[m], pred[m]
            present = np.unique(y)
            metrics = group["metrics"]
            assert metrics["accuracy"]["value"] == pytest.approx(accuracy_score(y, yhat), abs=1e-12)
            assert metrics["balanced_accuracy"]["value"] == pytest.approx(balanced_accuracy_score(y, yhat), abs=1e-12)
            for name, fn in (
                ("macro_precision", precision_score),
                ("macro_recall", recall_score),
                ("macro_f1", f1_score),
            ):
                expected = fn(y, yhat, labels=present, average="macro", zero_division=0)
                assert metrics[name]["value"] == pytest.approx(expected, abs=1e-12), (attribute, group["group"], name)
            assert group["confusion"] == confusion_matrix(y, yhat, labels=range(4)).tolist()
            assert group["class_counts"] == np.bincount(y, minlength=4).tolist()
            checked += 1
    assert checked > 10
    skin_iv = next(g for g in class_grouping(report, "skin_type")["groups"] if g["group"] == "IV")
    assert skin_iv["class_counts"][3] == 0  # the rare class is absent there, and left out of its macro mean


def test_one_vs_rest_rates_equal_fairlearn_per_class(rare) -> None:
    p, report = rare
    pred = p.exit_probs[:, -1, :].argmax(axis=1)
    for attribute in ATTRIBUTES:
        grouping = class_grouping(report, attribute)
        by_label = {g["group"]: g for g in grouping["groups"]}
        sf = pd.Series(np.asarray(p.groups[attribute]), name=attribute)
        for c, name in enumerate(p.classes):
            y, yhat = (p.y_true == c).astype(int), (pred == c).astype(int)
            frame = MetricFrame(
                metrics={"selection_rate": selection_rate, "tpr": fl_tpr, "fpr": false_positive_rate},
                y_true=y,
                y_pred=yhat,
                sensitive_features=sf,
            ).by_group
            block = grouping["fairlearn"][name]
            for label, row in frame.iterrows():
                ours = by_label[label]["per_class"][name]
                for metric in ("selection_rate", "tpr", "fpr"):
                    assert block["by_group"][label][metric] == pytest.approx(row[metric], abs=1e-12)
                if ours["tpr"]["value"] is not None:
                    assert ours["tpr"]["value"] == pytest.approx(row["tpr"], abs=1e-12)
                    assert ours["fpr"]["value"] == pytest.approx(row["fpr"], abs=1e-12)
                m = sf.to_numpy() == label
                if 0 < y[m].sum() < m.sum():
                    assert ours["auc"]["value"] == pytest.approx(roc_auc_score(y[m], p.exit_probs[m, -1, c]), abs=1e-12)
            expected = equalized_odds_difference(y, yhat, sensitive_features=sf)
            assert block["between_groups"]["equalized_odds_difference"] == pytest.approx(expected, abs=1e-12)


def test_pf_of_a_class_is_its_group_positives_against_every_other_sample(rare) -> None:
    p, report = rare
    scores, y = p.exit_probs[:, -1, 1], p.y_true == 1
    for group in class_grouping(report, "skin_type")["groups"]:
        m = _members(p, "skin_type", group["group"])
        pos, neg = scores[m & y], scores[~y]
        expected = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (
            len(pos) * len(neg)
        )
        assert group["per_class"]["class_1"]["pf"]["value"] == pytest.approx(expected, abs=1e-12)


def hand_example() -> MulticlassPredictionSet:
    """Two groups, three classes; class c2 never occurs in group B (its TPR there is 0/0).

    Group A (10): true c0 ×4 (pred c0,c0,c0,c1), c1 ×4 (pred c1,c1,c0,c2), c2 ×2 (pred c2,c0).
    Group B (8):  true c0 ×4 (pred c0,c0,c1,c1), c1 ×4 (pred c1,c1,c1,c2).
    """
    group_a = ([0, 0, 0, 0, 1, 1, 1, 1, 2, 2], [0, 0, 0, 1, 1, 1, 0, 2, 2, 0])
    group_b = ([0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1, 2])
    truth, predicted = [*group_a[0], *group_b[0]], [*group_a[1], *group_b[1]]
    probs = np.full((18, 3), 0.2)
    probs[np.arange(18), predicted] = 0.6
    return MulticlassPredictionSet(
        y_true=np.array(truth),
        exit_probs=probs[:, None, :],
        classes=("c0", "c1", "c2"),
        groups={"g": np.array(["A"] * 10 + ["B"] * 8, dtype=object)},
    )


def test_paper_gaps_by_hand_in_both_conventions() -> None:
    report = build_report(hand_example(), attributes=["g"], n_boot=0, min_count=1)
    gaps = class_grouping(report, "g")["gaps"]
    # Group A: TPR (3/4, 2/4, 1/2), FPR c0: 2/6, c1: 1/6, c2: 1/8. TNR = 1 - FPR.
    # Group B: TPR (2/4, 3/4, 0/0), FPR c0: 0/4, c1: 2/4, c2: 1/8.
    d_tpr = [abs(3 / 4 - 2 / 4), abs(2 / 4 - 3 / 4)]
    d_fpr = [2 / 6 - 0, 1 / 6 - 2 / 4]
    assert gaps["eopp1"]["value"] == pytest.approx(np.mean(d_tpr))
    assert gaps["eopp0"]["value"] == pytest.approx(np.mean([abs(2 / 6), abs(1 / 6 - 2 / 4), abs(1 / 8 - 1 / 8)]))
    assert gaps["eodd"]["value"] == pytest.approx(np.mean([abs(1 / 4 + d_fpr[0]), abs(-1 / 4 + d_fpr[1])]) / 2)
    assert gaps["eopp1"]["classes_used"] == ["c0", "c1"]
    assert [c["class_name"] for c in gaps["eopp1"]["classes_left_out"]] == ["c2"]
    assert gaps["eopp1"]["classes_left_out"][0]["reason"].startswith("undefined")
    assert gaps["eopp0"]["classes_used"] == ["c0", "c1", "c2"]
    # The paper's code: B's TPR of c2 counts as 0, and every class enters the mean.
    assert gaps["eopp1"]["paper_value"] == pytest.approx((1 / 4 + 1 / 4 + 1 / 2) / 3)
    assert gaps["eopp0"]["paper_value"] == pytest.approx(gaps["eopp0"]["value"])
    eodd_c2 = abs(1 / 2 - 0 + 1 / 8 - 1 / 8) / 2
    assert gaps["eodd"]["paper_value"] == pytest.approx(
        (abs(1 / 4 + d_fpr[0]) / 2 + abs(-1 / 4 + d_fpr[1]) / 2 + eodd_c2) / 3
    )
    b = next(g for g in class_grouping(report, "g")["groups"] if g["group"] == "B")
    assert b["per_class"]["c2"]["tpr"] == {
        "value": None,
        "ci_low": None,
        "ci_high": None,
        "status": "undefined",
        "n": 0,
    }
    assert b["metrics"]["macro_recall"]["value"] == pytest.approx((2 / 4 + 3 / 4) / 2)  # c2 absent: not averaged


def test_statuses_follow_the_class_counts_in_each_group() -> None:
    report = build_report(hand_example(), attributes=["g"], n_boot=0, min_count=3)
    grouping = class_grouping(report, "g")
    a = next(g for g in grouping["groups"] if g["group"] == "A")
    assert a["per_class"]["c2"]["tpr"]["status"] == "insufficient"  # 2 positives < 3
    assert a["per_class"]["c2"]["tpr"]["value"] == pytest.approx(0.5)
    assert a["per_class"]["c2"]["auc"]["status"] == "insufficient"
    assert a["per_class"]["c0"]["tpr"]["status"] == "ok"
    assert grouping["gaps"]["eopp1"]["classes_used"] == ["c0", "c1"]
    reasons = {c["class_name"]: c["reason"] for c in grouping["gaps"]["eopp1"]["classes_left_out"]}
    # Only group A has c2 at all (too few): the gap of c2 is undefined, as a binary gap would be.
    assert reasons["c2"] == "undefined: 0 of 2 groups ok (2 needed); A insufficient, B undefined"
    none_ok = class_grouping(build_report(hand_example(), attributes=["g"], n_boot=0, min_count=20), "g")
    assert none_ok["gaps"]["eopp1"]["status"] == "insufficient" and none_ok["gaps"]["eopp1"]["value"] is None
    assert none_ok["gaps"]["accuracy_gap"]["status"] == "insufficient"
    assert none_ok["averages"]["macro_f1"]["status"] == "insufficient"


def test_two_classes_agree_with_the_binary_report_for_class_1() -> None:
    rng = np.random.default_rng(7)
    n = 1200
    p1 = rng.uniform(0.01, 0.99, n)
    p1[np.isclose(p1, 0.5)] = 0.6  # argmax and >= 0.5 differ only at an exact tie
    y = (rng.random(n) < p1).astype(np.int64)
    groups = {"sex": rng.choice(["F", "M"], n).astype(object), "site": rng.choice(["a", "b", "c"], n).astype(object)}
    multi = build_report(
        MulticlassPredictionSet(
            y_true=y, exit_probs=np.stack([1 - p1, p1], axis=1)[:, None, :], classes=("neg", "pos"), groups=groups
        ),
        attributes=["sex", "site"],
        n_boot=0,
    )
    binary = build_report(
        PredictionSet(y_true=y, exit_scores=p1[:, None], groups=groups, threshold=0.5),
        attributes=["sex", "site"],
        n_boot=0,
    )
    for attribute in ("overall", "sex", "site", "sex×site"):
        theirs = {g["group"]: g["metrics"] for g in class_grouping(binary, attribute)["groups"]}
        for group in class_grouping(multi, attribute)["groups"]:
            ours = group["per_class"]["pos"]
            for metric in ("tpr", "fpr", "tnr", "ppv", "auc", "pf"):
                assert ours[metric]["value"] == pytest.approx(theirs[group["group"]][metric]["value"], abs=1e-12)
                assert ours[metric]["status"] == theirs[group["group"]][metric]["status"]
            assert group["metrics"]["accuracy"]["value"] == pytest.approx(theirs[group["group"]]["accuracy"]["value"])


def test_bootstrap_intervals_cover_the_estimate_and_are_seeded() -> None:
    p = simulate_classes(1500, 2, k=3, skin_shift=1.0, n_exits=2)
    first = build_report(p, attributes=ATTRIBUTES, n_boot=80, seed=5)
    again = build_report(p, attributes=ATTRIBUTES, n_boot=80, seed=5)
    other = build_report(p, attributes=ATTRIBUTES, n_boot=80, seed=6)
    assert json.dumps(first) == json.dumps(again)
    assert json.dumps(first) != json.dumps(other)
    values = 0
    for evaluation in first["evaluations"]:
        for grouping in evaluation["groupings"]:
            for group in grouping["groups"]:
                entries = list(group["metrics"].values()) + [
                    v for per in group["per_class"].values() for v in per.values() if isinstance(v, dict)
                ]
                for entry in entries:
                    if entry["status"] == "ok":
                        assert entry["ci_low"] <= entry["value"] + 1e-12 <= entry["ci_high"] + 2e-12
                        values += 1
            for gap in grouping.get("gaps", {}).values():
                if gap["status"] == "ok":
                    assert gap["ci_low"] <= gap["value"] <= gap["ci_high"]
    assert values > 200
    skin = class_grouping(first, "skin_type")
    assert skin["gaps"]["eopp1"]["ci_low"] > 0  # the planted skin-type bias
    assert "eopp" in first["summary"]["verdict"] and "skin_type" in first["summary"]["verdict"]
    assert first["summary"]["findings"][0]["excludes_zero"]


def test_exits_config_and_class_thresholds_are_reported() -> None:
    p = simulate_classes(600, 3, k=3, n_exits=3)
    thresholds = np.array([0.5, 1.0, 2.0])
    report = build_report(dataclasses.replace(p, class_thresholds=thresholds), attributes=["sex"], n_boot=0)
    assert [e["exit"] for e in report["evaluations"]] == [0, 1, 2, "policy"]
    assert report["exits"]["n_exits"] == 3 and report["exits"]["groupings"][0]["groups"][0]["n"] == 600
    assert report["config"]["decision"] == "argmax of p / class threshold"
    assert report["config"]["class_thresholds"] == [0.5, 1.0, 2.0]
    policy = p.exit_probs[np.arange(600), p.exit_index, :]
    pred = np.argmax(policy / thresholds, axis=1)
    overall = class_grouping(report, "overall")["groups"][0]
    assert overall["confusion"] == confusion_matrix(p.y_true, pred, labels=range(3)).tolist()
    assert report["population"]["class_counts"] == dict(zip(p.classes, np.bincount(p.y_true).tolist(), strict=True))


def test_fold_spread_is_the_spread_of_each_folds_own_report() -> None:
    p = simulate_classes(2000, 1, k=3, skin_shift=1.0)
    folds = np.array([f"s0/f{i % 4}" for i in range(2000)], dtype=object)
    pooled = build_report(dataclasses.replace(p, folds=folds, sample_ids=None), attributes=ATTRIBUTES, n_boot=0)
    assert pooled["config"]["folds"] == ["s0/f0", "s0/f1", "s0/f2", "s0/f3"]
    alone = []
    for label in pooled["config"]["folds"]:
        m = folds == label
        part = MulticlassPredictionSet(
            y_true=p.y_true[m],
            exit_probs=p.exit_probs[m],
            classes=p.classes,
            groups={a: v[m] for a, v in p.groups.items()},
        )
        alone.append(build_report(part, attributes=ATTRIBUTES, n_boot=0))
    skin = class_grouping(pooled, "skin_type")
    for name in ("eopp1", "eodd", "macro_f1_diff"):
        per_fold = [class_grouping(r, "skin_type")["gaps"][name]["value"] for r in alone]
        assert skin["gaps"][name]["folds"]["n"] == 4
        assert skin["gaps"][name]["folds"]["mean"] == pytest.approx(np.mean(per_fold), abs=1e-12)
        assert skin["gaps"][name]["folds"]["sd"] == pytest.approx(np.std(per_fold, ddof=1), abs=1e-12)
    auc = skin["groups"][0]["per_class"]["class_2"]["auc"]["folds"]
    per_fold = [class_grouping(r, "skin_type")["groups"][0]["per_class"]["class_2"]["auc"]["value"] for r in alone]
    assert auc["mean"] == pytest.approx(np.mean(per_fold), abs=1e-12)


def test_one_sample_clusters_resample_exactly_as_the_stratified_bootstrap() -> None:
    p = simulate_classes(800, 6, k=3, skin_shift=0.5)
    plain = build_report(p, attributes=ATTRIBUTES, n_boot=40, seed=2)
    singletons = build_report(
        dataclasses.replace(p, clusters=np.arange(800).astype(str).astype(object)),
        attributes=ATTRIBUTES,
        n_boot=40,
        seed=2,
    )
    assert singletons["config"].pop("n_clusters") == 800
    assert json.dumps(singletons["evaluations"]) == json.dumps(plain["evaluations"])
    patients = build_report(
        dataclasses.replace(p, clusters=(np.arange(800) // 4).astype(str).astype(object)),
        attributes=ATTRIBUTES,
        n_boot=40,
    )
    assert patients["config"]["n_clusters"] == 200
    assert json.dumps(patients["evaluations"]) != json.dumps(plain["evaluations"])
