"""Early-exit behaviour per group: how often each exit is taken, and the compute actually spent."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from app.fairness.engine.groups import Design
from app.fairness.engine.intervals import normal_mean, wilson
from app.fairness.engine.status import status_of


class ExitPredictions(Protocol):
    """What the exit block reads from any prediction set (binary, multi-class, multi-label)."""

    @property
    def exit_index(self) -> np.ndarray | None: ...

    @property
    def exit_cost(self) -> np.ndarray | None: ...

    @property
    def n_exits(self) -> int: ...


def _value(value: float, low: float, high: float, status: str, n: int) -> dict:
    finite = status != "undefined"
    return {
        "value": float(value) if finite else None,
        "ci_low": float(low) if finite and np.isfinite(low) else None,
        "ci_high": float(high) if finite and np.isfinite(high) else None,
        "status": status,
        "n": int(n),
    }


def exit_summary(
    exit_index: np.ndarray,
    exit_cost: np.ndarray | None,
    codes: np.ndarray,
    n_groups: int,
    n_exits: int,
    *,
    min_count: int,
    confidence: float,
) -> list[dict]:
    """Per group: exit rates (Wilson intervals) and mean compute per sample (normal interval).

    Mean compute is the mean of ``exit_cost[exit]``, the fraction of the full network's
    multiply-adds spent; None when the costs are unknown.
    """
    keep = codes >= 0
    counts = np.bincount(codes[keep] * n_exits + exit_index[keep], minlength=n_groups * n_exits).reshape(
        n_groups, n_exits
    )
    n = counts.sum(axis=1)
    low, high = wilson(counts, n[:, None], confidence)
    status = status_of(n, min_count)
    cost_mean = cost_sd = None
    if exit_cost is not None:
        cost = np.asarray(exit_cost, dtype=np.float64)[exit_index[keep]]
        total = np.bincount(codes[keep], weights=cost, minlength=n_groups)
        square = np.bincount(codes[keep], weights=cost * cost, minlength=n_groups)
        with np.errstate(divide="ignore", invalid="ignore"):
            cost_mean = total / n
            cost_sd = np.sqrt(np.maximum(square / n - cost_mean**2, 0.0) * n / np.maximum(n - 1, 1))
        c_low, c_high = normal_mean(cost_mean, cost_sd, n, confidence)
    out = []
    for g in range(n_groups):
        with np.errstate(divide="ignore", invalid="ignore"):
            rates = counts[g] / n[g]
        entry = {
            "n": int(n[g]),
            "exit_rates": [_value(rates[e], low[g, e], high[g, e], status[g], n[g]) for e in range(n_exits)],
            "mean_compute": None,
        }
        if cost_mean is not None:
            entry["mean_compute"] = _value(cost_mean[g], c_low[g], c_high[g], status[g], n[g])
        out.append(entry)
    return out


def exits_block(predictions: ExitPredictions, design: Design, min_count: int, confidence: float) -> dict | None:
    """The report's ``exits``: per grouping and group, exit rates and mean compute; None without an
    exit index."""
    if predictions.exit_index is None:
        return None
    exit_index = np.asarray(predictions.exit_index, dtype=np.int64)[design.order]
    cost = None if predictions.exit_cost is None else np.asarray(predictions.exit_cost, dtype=np.float64)
    return {
        "n_exits": predictions.n_exits,
        "exit_cost": None if cost is None else [float(c) for c in cost],
        "groupings": [
            {
                "attribute": g.attribute,
                "kind": g.kind,
                "groups": [
                    {"group": label, **entry}
                    for label, entry in zip(
                        g.labels,
                        exit_summary(
                            exit_index,
                            cost,
                            g.codes,
                            g.n_groups,
                            predictions.n_exits,
                            min_count=min_count,
                            confidence=confidence,
                        ),
                        strict=True,
                    )
                ],
            }
            for g in design.groupings
        ],
    }
