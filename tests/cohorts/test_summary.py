"""Cohort summary on a small example whose counts are known by hand."""

from __future__ import annotations

import json

from app.cohorts.summary import summarize

LABELS = [1, 0, 0, 1, 0, 1, 0, 0]
SPLITS = ["train", "train", "train", "train", "test", "test", "test", "val"]
ATTRIBUTES = {
    "sex": ["female", "female", "male", "male", "female", None, "male", "female"],
    "age_group": ["<40", "<40", "<40", ">=75", ">=75", "<40", None, "<40"],
}


def test_counts_per_split_label_and_group() -> None:
    summary = summarize(LABELS, SPLITS, ATTRIBUTES, min_count=1)
    assert summary["n"] == 8
    assert summary["splits"] == {
        "train": {"n": 4, "positives": 2, "negatives": 2},
        "val": {"n": 1, "positives": 0, "negatives": 1},
        "test": {"n": 3, "positives": 1, "negatives": 2},
    }
    sex = summary["groupings"]["sex"]
    assert sex["missing"] == 1 and sex["missing_rate"] == 1 / 8
    assert [(c["group"]["sex"], c["split"], c["label"], c["count"]) for c in sex["cells"]] == [
        ("female", "train", 0, 1),
        ("female", "train", 1, 1),
        ("female", "val", 0, 1),
        ("female", "test", 0, 1),
        ("male", "train", 0, 1),
        ("male", "train", 1, 1),
        ("male", "test", 0, 1),
    ]


def test_intersection_counts_and_missing() -> None:
    both = summarize(LABELS, SPLITS, ATTRIBUTES, min_count=1)["groupings"]["sex&age_group"]
    assert both["attributes"] == ["sex", "age_group"]
    assert both["missing"] == 2
    assert [(c["group"], c["split"], c["label"], c["count"]) for c in both["cells"]] == [
        ({"sex": "female", "age_group": "<40"}, "train", 0, 1),
        ({"sex": "female", "age_group": "<40"}, "train", 1, 1),
        ({"sex": "female", "age_group": "<40"}, "val", 0, 1),
        ({"sex": "female", "age_group": ">=75"}, "test", 0, 1),
        ({"sex": "male", "age_group": "<40"}, "train", 0, 1),
        ({"sex": "male", "age_group": ">=75"}, "train", 1, 1),
    ]


def test_small_group_warnings_include_empty_cells() -> None:
    warnings = summarize(LABELS, SPLITS, {"sex": ATTRIBUTES["sex"]}, min_count=1)["warnings"]
    described = {(w["group"]["sex"], w["split"], w["label"], w["count"]) for w in warnings}
    assert ("female", "test", 1, 0) in described
    assert ("male", "val", 0, 0) in described
    assert ("female", "train", 1, 1) not in described
    female_test = [w for w in warnings if w["group"] == {"sex": "female"} and w["split"] == "test"]
    assert female_test[0]["message"] == "sex=female has 0 positives in test (fewer than 1)"


def test_is_json_serialisable_and_single_attribute_has_no_intersection() -> None:
    summary = summarize(LABELS, SPLITS, {"sex": ATTRIBUTES["sex"]})
    assert list(summary["groupings"]) == ["sex"]
    assert json.loads(json.dumps(summary)) == summary
