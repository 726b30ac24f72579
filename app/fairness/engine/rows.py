"""Flat rows of any report for the ``metric_rows`` table (``metric_rows``)."""

from __future__ import annotations

from collections.abc import Iterator

from app.fairness.engine.evaluate import METRICS, num


def _row(attribute: str, group: str, exit_key: object, metric: str, value: dict | float | None, n: int | None) -> dict:
    if isinstance(value, dict):
        return {
            "attribute": attribute,
            "group": group,
            "exit": str(exit_key),
            "metric": metric,
            "value": value.get("value"),
            "ci_low": value.get("ci_low"),
            "ci_high": value.get("ci_high"),
            "status": value.get("status", "ok"),
            "n": n if n is not None else value.get("n"),
        }
    return {
        "attribute": attribute,
        "group": group,
        "exit": str(exit_key),
        "metric": metric,
        "value": num(value),
        "ci_low": None,
        "ci_high": None,
        "status": "ok" if num(value) is not None else "undefined",
        "n": n,
    }


def _exit_rows(exits: dict | None) -> Iterator[dict]:
    if not exits:
        return
    for grouping in exits["groupings"]:
        for group in grouping["groups"]:
            for e, rate in enumerate(group["exit_rates"]):
                yield _row(grouping["attribute"], group["group"], e, "exit_rate", rate, None)
            if group["mean_compute"] is not None:
                compute = group["mean_compute"]
                yield _row(grouping["attribute"], group["group"], "policy", "mean_compute", compute, None)


def binary_rows(report: dict) -> Iterator[dict]:
    """Rows of a binary report: per group its counts and metrics, gaps, Holm p, Fairlearn, exits."""
    for evaluation in report["evaluations"]:
        exit_key = evaluation["exit"]
        for grouping in evaluation["groupings"]:
            attribute = grouping["attribute"]
            for group in grouping["groups"]:
                label = group["group"]
                for count in ("n", "n_pos", "n_neg"):
                    yield _row(attribute, label, exit_key, count, float(group[count]), group["n"])
                for metric in METRICS:
                    yield _row(attribute, label, exit_key, metric, group["metrics"][metric], None)
            for name, gap in grouping.get("gaps", {}).items():
                yield _row(attribute, "*", exit_key, name, gap, len(gap["groups_used"]))
            for family, tests in grouping.get("tests", {}).items():
                for test in tests:
                    p = test["p_holm"]
                    yield _row(attribute, test["group"], exit_key, f"p_holm.{family}", p, None)
            fairlearn = grouping.get("fairlearn")
            if fairlearn:
                for label, rates in fairlearn["by_group"].items():
                    for rate, value in rates.items():
                        yield _row(attribute, label, exit_key, f"fairlearn.{rate}", value, None)
                for method in ("between_groups", "to_overall"):
                    for name, value in fairlearn[method].items():
                        yield _row(attribute, "*", exit_key, f"fairlearn.{name}.{method}", value, None)
    yield from _exit_rows(report.get("exits"))


def of_class(metric: str, name: str) -> str:
    """A metric of one class or finding: ``tpr[melanoma]``."""
    return f"{metric}[{name}]"


def multiclass_rows(report: dict) -> Iterator[dict]:
    """Rows of a multi-class report: per group its size, accuracy and macro metrics, per class its
    count and one-vs-rest metrics (``tpr[class]``); per attribute the gaps (the paper's convention as
    ``eopp1.paper``), the averages (``avg.macro_f1``) and per-class gaps (``eopp1[class]``); exits.
    Confusion matrices and the per-class Fairlearn blocks stay in the report."""
    for evaluation in report["evaluations"]:
        exit_key = evaluation["exit"]
        for grouping in evaluation["groupings"]:
            attribute = grouping["attribute"]
            for group in grouping["groups"]:
                label = group["group"]
                yield _row(attribute, label, exit_key, "n", float(group["n"]), group["n"])
                for metric, value in group["metrics"].items():
                    yield _row(attribute, label, exit_key, metric, value, None)
                for name, entry in group["per_class"].items():
                    yield _row(attribute, label, exit_key, of_class("n", name), float(entry["n_pos"]), group["n"])
                    for metric, value in entry.items():
                        if isinstance(value, dict):
                            yield _row(attribute, label, exit_key, of_class(metric, name), value, None)
            for name, gap in grouping.get("gaps", {}).items():
                used = gap["classes_used"] if "classes_used" in gap else gap["groups_used"]
                yield _row(attribute, "*", exit_key, name, gap, len(used))
                if "paper_value" in gap:
                    yield _row(attribute, "*", exit_key, f"{name}.paper", gap["paper_value"], None)
            for name, value in grouping.get("averages", {}).items():
                yield _row(attribute, "*", exit_key, f"avg.{name}", value, None)
            for class_name, gaps in grouping.get("per_class_gaps", {}).items():
                for name, gap in gaps.items():
                    yield _row(attribute, "*", exit_key, of_class(name, class_name), gap, len(gap["groups_used"]))
    yield from _exit_rows(report.get("exits"))


def multilabel_rows(report: dict) -> Iterator[dict]:
    """Every finding's binary rows, the finding named in the metric (``tpr[effusion]``)."""
    for finding, binary in report["per_finding"].items():
        for row in binary_rows(binary):
            yield {**row, "metric": of_class(row["metric"], finding)}


def metric_rows(report: dict) -> Iterator[dict]:
    """Flat rows (attribute, group, exit, metric, value, ci_low, ci_high, status, n) for storage.

    ``exit`` is a string ("0".."k" or "policy"); gaps and Fairlearn's differences use group "*".
    A class or finding is named in the metric: ``tpr[melanoma]``.
    """
    task = report.get("task")
    if task == "multiclass":
        return multiclass_rows(report)
    if task == "multilabel":
        return multilabel_rows(report)
    return binary_rows(report)
