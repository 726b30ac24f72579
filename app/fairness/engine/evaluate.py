"""One evaluation (one exit, or the policy): per-group metrics, gaps, tests and the Fairlearn block."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.fairness.engine.curves import reliability, roc_points
from app.fairness.engine.fairlearn_compat import RATES, fairlearn_block
from app.fairness.engine.gaps import GAP_RANGE, GAPS, GapTable, gap_status, gap_values, used_groups
from app.fairness.engine.groups import Grouping
from app.fairness.engine.intervals import centred, percentile, wilson
from app.fairness.engine.kernel import ColumnPlan, GroupArrays, GroupingPlan
from app.fairness.engine.significance import bootstrap_wald, holm, two_proportion
from app.fairness.engine.status import OK, UNDEFINED, status_of, worst

METRICS = (
    "prevalence",
    "auc",
    "pf",
    "tpr",
    "fpr",
    "tnr",
    "fnr",
    "ppv",
    "npv",
    "accuracy",
    "selection_rate",
    "ece",
    "brier",
)
TEST_FAMILIES = ("tpr", "fpr", "selection_rate", "pf")
GAP_TESTS: dict[str, tuple[str, ...]] = {
    "pfd": ("pf",),
    "eopp1": ("tpr",),
    "eopp0": ("fpr",),
    "eodd": ("tpr", "fpr"),
    "demographic_parity_difference": ("selection_rate",),
    "demographic_parity_ratio": ("selection_rate",),
    "equalized_odds_difference": ("tpr", "fpr"),
    "equalized_odds_ratio": ("tpr", "fpr"),
    "equal_opportunity_difference": ("tpr",),
    "equal_opportunity_ratio": ("tpr",),
}


def num(x: float | np.floating | None) -> float | None:
    """JSON number: None for NaN, infinities and None."""
    if x is None:
        return None
    value = float(x)
    return value if np.isfinite(value) else None


@dataclass(frozen=True)
class Options:
    """Report settings every evaluation needs."""

    min_count: int
    confidence: float


@dataclass(frozen=True)
class MetricTable:
    """Per-group arrays of one metric."""

    value: np.ndarray
    low: np.ndarray
    high: np.ndarray
    status: np.ndarray
    n: np.ndarray

    def entry(self, k: int) -> dict:
        defined = self.status[k] != UNDEFINED
        return {
            "value": num(self.value[k]) if defined else None,
            "ci_low": num(self.low[k]) if defined else None,
            "ci_high": num(self.high[k]) if defined else None,
            "status": str(self.status[k]),
            "n": int(self.n[k]),
        }


def metric_tables(
    gp: GroupingPlan, point: GroupArrays, boot: GroupArrays | None, n_neg_total: int, s: Options
) -> dict[str, MetricTable]:
    """All per-group metrics of one grouping with intervals and statuses."""
    n, n_pos, n_neg = gp.n, gp.n_pos, gp.n_neg
    tp = np.rint(point["tp"][0]).astype(np.int64)
    fp = np.rint(point["fp"][0]).astype(np.int64)
    fn, tn = n_pos - tp, n_neg - fp
    pred_pos = tp + fp
    pred_neg = n - pred_pos
    counts = {
        "prevalence": (n_pos, n),
        "tpr": (tp, n_pos),
        "fnr": (fn, n_pos),
        "fpr": (fp, n_neg),
        "tnr": (tn, n_neg),
        "ppv": (tp, pred_pos),
        "npv": (tn, pred_neg),
        "accuracy": (tp + tn, n),
        "selection_rate": (pred_pos, n),
    }
    denominators = {
        "auc": np.minimum(n_pos, n_neg),
        "pf": np.minimum(n_pos, n_neg_total),
        "ece": n,
        "brier": n,
    }
    tables: dict[str, MetricTable] = {}
    for name in METRICS:
        if name in counts:
            x, den = counts[name]
            with np.errstate(divide="ignore", invalid="ignore"):
                value = np.where(den > 0, x / np.maximum(den, 1), np.nan)
            low, high = wilson(x, den, s.confidence)
        else:
            den = denominators[name]
            value = point[name][0]
            if boot is not None and len(boot[name]):
                low, high = percentile(boot[name], s.confidence)
            else:
                low = high = np.full(len(n), np.nan)
        tables[name] = MetricTable(value, low, high, status_of(den, s.min_count), np.asarray(den))
    return tables


def group_tests(
    gp: GroupingPlan,
    tables: dict[str, MetricTable],
    point: GroupArrays,
    boot: GroupArrays | None,
    total: dict[str, int],
    s: Options,
) -> dict[str, dict[str, np.ndarray]]:
    """Per family: difference (group − rest), statistic, p and Holm-adjusted p for each group."""
    tp, fp = point["tp"][0], point["fp"][0]
    pred = tp + fp
    specs = {
        "tpr": (tp, gp.n_pos, total["tp"] - tp, total["n_pos"] - gp.n_pos),
        "fpr": (fp, gp.n_neg, total["fp"] - fp, total["n_neg"] - gp.n_neg),
        "selection_rate": (pred, gp.n, total["tp"] + total["fp"] - pred, total["n"] - gp.n),
    }
    out: dict[str, dict[str, np.ndarray]] = {}
    for family, (x1, n1, x2, n2) in specs.items():
        eligible = (tables[family].status == OK) & (n2 >= s.min_count)
        diff, z, p = two_proportion(x1, n1, x2, n2)
        out[family] = {"difference": diff, "statistic": z, "p_value": np.where(eligible, p, np.nan)}
    rest_pos = total["n_pos"] - gp.n_pos
    eligible = (tables["pf"].status == OK) & (rest_pos >= s.min_count)
    diff = point["pf"][0] - point["pf_rest"][0]
    if boot is not None and len(boot["pf"]) >= 2:
        z, p = bootstrap_wald(diff, boot["pf"] - boot["pf_rest"])
    else:
        z = p = np.full(len(diff), np.nan)
    out["pf"] = {"difference": diff, "statistic": z, "p_value": np.where(eligible, p, np.nan)}
    for result in out.values():
        result["p_holm"] = holm(result["p_value"])
    return out


def gap_entry(
    name: str,
    labels: tuple[str, ...],
    statuses: dict[str, np.ndarray],
    point: GroupArrays,
    boot: GroupArrays | None,
    confidence: float,
    p_value: float | None = None,
    table: GapTable = GAPS,
) -> dict:
    """Gap ``name`` of ``table`` over the ok groups: its value, the centred bootstrap interval, its
    status, and the groups it used and left out (with why)."""
    sources, _ = table[name]
    used = used_groups(name, statuses, table)
    status = gap_status(name, statuses, table)
    value = gap_values(name, point, used, table)[0] if status == OK else np.nan
    interval = (np.full(1, np.nan), np.full(1, np.nan))
    if status == OK and boot is not None and len(boot[sources[0]]):
        interval = centred(gap_values(name, boot, used, table)[:, None], np.array([value]), confidence, GAP_RANGE)
    low, high = float(interval[0][0]), float(interval[1][0])
    if status == OK and np.isnan(value):
        status = UNDEFINED  # e.g. a ratio whose largest rate is 0
    left = worst(*(statuses[m] for m in sources))
    return {
        "value": num(value) if status == OK else None,
        "ci_low": num(low) if status == OK else None,
        "ci_high": num(high) if status == OK else None,
        "status": status,
        "p_value": p_value,
        "groups_used": [labels[k] for k in np.flatnonzero(used)],
        "left_out": [{"group": labels[k], "status": str(left[k])} for k in np.flatnonzero(~used)],
    }


def gap_entries(
    grouping: Grouping,
    tables: dict[str, MetricTable],
    point: GroupArrays,
    boot: GroupArrays | None,
    tests: dict[str, dict[str, np.ndarray]],
    s: Options,
) -> dict[str, dict]:
    statuses = {m: tables[m].status for m in ("pf", "auc", "tpr", "fpr", "tnr", "selection_rate")}
    out = {}
    for name in GAPS:
        p_value = None
        families = GAP_TESTS.get(name)
        if families:
            p_raw = np.concatenate([tests[f]["p_value"] for f in families])
            adjusted = holm(p_raw)
            p_value = num(np.nanmin(adjusted)) if np.isfinite(adjusted).any() else None
        out[name] = gap_entry(name, grouping.labels, statuses, point, boot, s.confidence, p_value)
    return out


def fairlearn_entry(
    labels: tuple[str, ...], tp: np.ndarray, fp: np.ndarray, n_pos: np.ndarray, n_neg: np.ndarray
) -> dict:
    """The report's ``fairlearn`` block of one grouping from its groups' confusion counts."""
    fl = fairlearn_block(tp, fp, n_pos, n_neg)
    return {
        "by_group": {label: {r: num(fl["by_group"][r][k]) for r in RATES} for k, label in enumerate(labels)},
        "overall": {r: num(v) for r, v in fl["overall"].items()},
        "between_groups": {m: num(v) for m, v in fl["between_groups"].items()},
        "to_overall": {m: num(v) for m, v in fl["to_overall"].items()},
    }


def evaluate_column(
    plan: ColumnPlan,
    point: dict[str, GroupArrays],
    boot: dict[str, GroupArrays] | None,
    s: Options,
    *,
    curves_from: tuple[np.ndarray, np.ndarray] | None = None,
    n_bins: int = 10,
) -> list[dict]:
    """The ``groupings`` list of one evaluation. ``curves_from``: (y, scores) in internal order, to
    add ROC and reliability points (the report does this for the policy only)."""
    overall = point["overall"]
    total = {
        "n": plan.n_pos + plan.n_neg,
        "n_pos": plan.n_pos,
        "n_neg": plan.n_neg,
        "tp": int(np.rint(overall["tp"][0, 0])),
        "fp": int(np.rint(overall["fp"][0, 0])),
    }
    out = []
    for gp in plan.groupings:
        g = gp.grouping
        pt = point[g.attribute]
        bt = boot[g.attribute] if boot is not None else None
        tables = metric_tables(gp, pt, bt, plan.n_neg, s)
        entry: dict = {
            "attribute": g.attribute,
            "kind": g.kind,
            "n_missing": g.n_missing,
            "groups": [
                {
                    "group": label,
                    "levels": g.levels[k],
                    "n": int(gp.n[k]),
                    "n_pos": int(gp.n_pos[k]),
                    "n_neg": int(gp.n_neg[k]),
                    "metrics": {m: tables[m].entry(k) for m in METRICS},
                }
                for k, label in enumerate(g.labels)
            ],
        }
        if g.kind != "overall":
            tests = group_tests(gp, tables, pt, bt, total, s)
            entry["gaps"] = gap_entries(g, tables, pt, bt, tests, s)
            entry["tests"] = {
                family: [
                    {
                        "group": label,
                        "difference": num(tests[family]["difference"][k]),
                        "statistic": num(tests[family]["statistic"][k]),
                        "p_value": num(tests[family]["p_value"][k]),
                        "p_holm": num(tests[family]["p_holm"][k]),
                    }
                    for k, label in enumerate(g.labels)
                ]
                for family in TEST_FAMILIES
            }
            entry["fairlearn"] = fairlearn_entry(g.labels, pt["tp"][0], pt["fp"][0], gp.n_pos, gp.n_neg)
        if curves_from is not None:
            y, scores = curves_from
            entry["curves"] = _curves(g, y, scores, n_bins)
        out.append(entry)
    return out


def _curves(g: Grouping, y: np.ndarray, scores: np.ndarray, n_bins: int) -> dict:
    points = reliability(y, scores, g.codes, g.n_groups, n_bins)
    return {
        "roc": {label: roc_points(y[g.codes == k], scores[g.codes == k]) for k, label in enumerate(g.labels)},
        "reliability": {label: points[k] for k, label in enumerate(g.labels)},
    }
