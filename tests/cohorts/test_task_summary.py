"""Summaries of multi-class and multi-label cohorts, on small examples counted by hand; the task in the cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from app.cohorts.cache import ITEMS_FILE, load_cohort_arrays, write_items
from app.cohorts.image_store import create_image_store
from app.cohorts.summary import MAX_TASK_WARNINGS, summarize
from app.modelpkg.task import BINARY, Task

SPLITS = ["train", "train", "train", "train", "test", "test"]
SEX = {"sex": ["female", "female", "male", "male", "female", None]}
THREE = Task(kind="multiclass", classes=["benign", "malignant", "other"])
FINDINGS = Task(kind="multilabel", classes=["edema", "effusion"])


def test_multiclass_counts_class_by_group_and_warns_per_class() -> None:
    summary = summarize([0, 1, 1, 2, 0, 1], SPLITS, SEX, min_count=1, task=THREE, merged={"other": ["scar", "wart"]})
    assert summary["task"] == "multiclass" and summary["classes"] == THREE.classes
    assert summary["merged"] == {"other": ["scar", "wart"]}
    assert summary["splits"] == {
        "train": {"n": 4, "classes": {"benign": 1, "malignant": 2, "other": 1}},
        "test": {"n": 2, "classes": {"benign": 1, "malignant": 1, "other": 0}},
    }
    cells = [(c["group"]["sex"], c["split"], c["class"], c["count"]) for c in summary["groupings"]["sex"]["cells"]]
    assert cells == [
        ("female", "train", "benign", 1),
        ("female", "train", "malignant", 1),
        ("female", "test", "benign", 1),
        ("male", "train", "malignant", 1),
        ("male", "train", "other", 1),
    ]
    warned = {(w["group"]["sex"], w["split"], w["class"], w["label"], w["count"]) for w in summary["warnings"]}
    assert ("female", "train", "other", 1, 0) in warned  # no female 'other' in train
    assert ("female", "test", "benign", 0, 0) in warned  # one-vs-rest: no female non-benign in test
    assert ("male", "test", "malignant", 1, 0) in warned  # males observed, none in test
    assert ("female", "train", "benign", 1, 1) not in warned
    assert summary["warnings_omitted"] == 0
    message = next(w["message"] for w in summary["warnings"] if w["class"] == "other" and w["group"] == {"sex": "male"})
    assert "examples of" in message and "fewer than 1" in message
    json.dumps(summary)


def test_multilabel_counts_per_finding_and_leaves_unknowns_out() -> None:
    labels = [(1, 0), (0, -1), (1, 1), (0, 0), (-1, 1), (1, 0)]
    summary = summarize(labels, SPLITS, SEX, min_count=1, task=FINDINGS)
    assert summary["splits"]["train"]["findings"] == {
        "edema": {"positives": 2, "negatives": 2, "unknown": 0},
        "effusion": {"positives": 1, "negatives": 2, "unknown": 1},
    }
    assert summary["splits"]["test"]["findings"]["edema"] == {"positives": 1, "negatives": 0, "unknown": 1}
    cells = summary["groupings"]["sex"]["cells"]
    effusion = [(c["group"]["sex"], c["split"], c["label"], c["count"]) for c in cells if c["finding"] == "effusion"]
    assert effusion == [
        ("female", "train", 0, 1),
        ("female", "test", 1, 1),
        ("male", "train", 0, 1),
        ("male", "train", 1, 1),
    ]
    warned = {(w["finding"], w["group"]["sex"], w["split"], w["label"]) for w in summary["warnings"]}
    assert ("effusion", "female", "train", 1) in warned and ("edema", "female", "train", 1) not in warned
    assert all(w["message"].startswith(f"finding {w['finding']!r}: ") for w in summary["warnings"])


def test_binary_summary_has_no_task_keys() -> None:
    summary = summarize([1, 0, 0, 1, 0, 1], SPLITS, SEX, min_count=1)
    assert list(summary) == ["n", "splits", "groupings", "warnings"]
    assert summary == summarize([1, 0, 0, 1, 0, 1], SPLITS, SEX, min_count=1, task=BINARY)


def write_cache(folder: Path, labels: list, task: Task | None) -> None:
    create_image_store(folder, len(labels), 16, 1)
    write_items(
        folder,
        size=16,
        channels=1,
        item_ids=[f"i{k}" for k in range(len(labels))],
        labels=labels,
        split=["train"] * len(labels),
        patient_ids=[None] * len(labels),
        attributes={"sex": ["f"] * len(labels)},
        **({"task": task} if task else {}),
    )


def test_the_cache_keeps_the_task_and_label_shapes(tmp_path: Path) -> None:
    write_cache(tmp_path / "mc", [0, 2, 1, 2], THREE)
    arrays = load_cohort_arrays(tmp_path / "mc")
    assert arrays.task == THREE and arrays.labels.tolist() == [0, 2, 1, 2] and arrays.labels.ndim == 1
    write_cache(tmp_path / "ml", [(1, 0), (-1, 1), (0, 0)], FINDINGS)
    arrays = load_cohort_arrays(tmp_path / "ml")
    assert arrays.task == FINDINGS and arrays.labels.shape == (3, 2) and arrays.labels[1].tolist() == [-1, 1]


def test_a_cache_written_before_tasks_loads_as_binary(tmp_path: Path) -> None:
    write_cache(tmp_path, [0, 1, 1], None)
    meta = json.loads((tmp_path / ITEMS_FILE).read_text())
    assert meta["task"] == {"kind": "binary", "classes": []}
    del meta["task"]
    (tmp_path / ITEMS_FILE).write_text(json.dumps(meta))
    arrays = load_cohort_arrays(tmp_path)
    assert arrays.task == BINARY and arrays.labels.dtype == np.int8 and arrays.labels.tolist() == [0, 1, 1]


def test_warnings_of_many_classes_are_capped_and_counted() -> None:
    classes = Task(kind="multiclass", classes=[f"c{k}" for k in range(120)])
    labels = list(range(120)) * 2
    splits = ["train"] * 120 + ["test"] * 120
    attributes = {"sex": ["f"] * 240, "site": ["a"] * 240}  # three groupings: sex, site, sex&site
    summary = summarize(labels, splits, attributes, min_count=2, task=classes)
    assert len(summary["warnings"]) == MAX_TASK_WARNINGS
    # each grouping × class × split has 1 example of the class (< 2): 3 × 120 × 2 warnings
    assert summary["warnings_omitted"] == 3 * 120 * 2 - MAX_TASK_WARNINGS
