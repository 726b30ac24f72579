"""Turning scores into decisions: the operating threshold and the early-exit policy.

Operating threshold (predictions are ``score >= threshold``), one of four rules:

- ``youden``: Youden's J = TPR − FPR maximised over the observed scores (ties: the higher threshold);
- ``target_specificity``: the lowest threshold whose specificity reaches a target (the most
  sensitive such threshold);
- ``target_sensitivity``: the highest threshold whose sensitivity reaches a target (the most
  specific such threshold);
- ``constrained``: the best overall J among the observed scores at which every *held* group (one
  with at least ``min_group_count`` positives and negatives) keeps its TPR and FPR within a
  ``GroupBand`` (max − min across held groups, and/or absolute limits per group). Smaller groups
  are reported but not held: their rates are too noisy to bind a threshold. When no candidate
  meets the band the rule fails (``InfeasibleBand``) unless the caller asked to fall back to Youden,
  and the record says ``constraint_met: false``. A band-only constraint is always met near the top
  score (every group's rates near 0); ``min_tpr`` rules such thresholds out.

Training freezes one on its validation split (never on test); an uploaded audit may choose one the
same way (``app.fairness.service``). ``choose_operating_point`` returns the threshold with every
group's TPR and FPR at it, which is what a model records about how it was chosen.

Early exit: a sample leaves at the first exit whose confidence max(p, 1 − p) reaches that exit's θ
(``None``: that exit never decides), else the last exit decides. ``exit_index`` replays that policy
on every exit's scores; serving runs the same rule stage by stage (``app.modelpkg.onnx_chain``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np

#: Candidate × group cells evaluated at once by the constrained rule (bounds its memory on large audits).
_BLOCK_CELLS = 1 << 21
#: Slack on the band comparisons, so a rate exactly at a limit is in band despite float rounding.
_EPS = 1e-12

Rule = Literal["youden", "target_specificity", "target_sensitivity", "constrained"]
RULES: tuple[Rule, ...] = ("youden", "target_specificity", "target_sensitivity", "constrained")


def youden_threshold(y: np.ndarray, s: np.ndarray) -> float:
    order = np.argsort(-s, kind="stable")
    ys, ss = y[order], s[order]
    last = np.r_[ss[1:] != ss[:-1], True]  # last row of each distinct score: "predict s >= score"
    tpr = np.cumsum(ys == 1)[last] / max(int((y == 1).sum()), 1)
    fpr = np.cumsum(ys == 0)[last] / max(int((y == 0).sum()), 1)
    return float(ss[last][int(np.argmax(tpr - fpr))])  # first maximum: the higher threshold


def specificity_threshold(y: np.ndarray, s: np.ndarray, target: float) -> float:
    """Lowest threshold t with P(s < t | negative) ≥ target (the most sensitive such threshold)."""
    neg = np.sort(s[y == 0])
    if len(neg) == 0:
        return float(s.min())
    k = int(np.ceil(target * len(neg)))  # at least k negatives strictly below t
    if k == 0:
        return float(neg[0])
    t = neg[k - 1]
    return float(np.nextafter(t, np.inf))


def sensitivity_threshold(y: np.ndarray, s: np.ndarray, target: float) -> float:
    """Highest threshold t with P(s ≥ t | positive) ≥ target (the most specific such threshold)."""
    pos = np.sort(s[y == 1])[::-1]
    if len(pos) == 0:
        return float(s.max())
    k = max(int(np.ceil(target * len(pos))), 1)  # at least k positives at or above t
    return float(pos[k - 1])


@dataclass(frozen=True)
class GroupBand:
    """What every held group's rates must satisfy at the threshold (``None``: that limit is off)."""

    fpr_band: float | None = None  # max − min FPR across held groups ≤
    tpr_band: float | None = None  # max − min TPR across held groups ≤
    max_fpr: float | None = None  # every held group's FPR ≤
    min_tpr: float | None = None  # every held group's TPR ≥
    min_group_count: int = 10  # held: n_pos ≥ this and n_neg ≥ this

    def __post_init__(self) -> None:
        if all(v is None for v in (self.fpr_band, self.tpr_band, self.max_fpr, self.min_tpr)):
            raise ValueError("a group band needs at least one of fpr_band, tpr_band, max_fpr, min_tpr")
        if self.min_group_count < 1:
            raise ValueError("min_group_count must be >= 1")

    def describe(self) -> str:
        limits = [
            f"{name} {op} {value:g}"
            for name, op, value in (
                ("FPR spread", "≤", self.fpr_band),
                ("TPR spread", "≤", self.tpr_band),
                ("FPR", "≤", self.max_fpr),
                ("TPR", "≥", self.min_tpr),
            )
            if value is not None
        ]
        return ", ".join(limits) + f" for every group with ≥ {self.min_group_count} positives and negatives"


@dataclass(frozen=True)
class OperatingRule:
    """A rule and its parameters, as a training config or an audit config states them."""

    rule: Rule = "youden"
    target_specificity: float | None = None
    target_sensitivity: float | None = None
    band: GroupBand | None = None
    on_infeasible: Literal["fail", "youden"] = "fail"

    def __post_init__(self) -> None:
        needs = {"target_specificity": self.target_specificity, "target_sensitivity": self.target_sensitivity}
        if self.rule in needs and needs[self.rule] is None:
            raise ValueError(f"rule {self.rule!r} needs {self.rule}")
        if (self.rule == "constrained") != (self.band is not None):
            raise ValueError("a band goes with the constrained rule, and only with it")

    @classmethod
    def from_config(
        cls,
        rule: str,
        target_specificity: float | None = None,
        target_sensitivity: float | None = None,
        constraint: Mapping[str, Any] | None = None,
    ) -> OperatingRule:
        """From a config's fields (``constraint``: the ``threshold_constraint`` object as a mapping)."""
        if rule not in RULES:
            raise ValueError(f"unknown threshold rule {rule!r}")
        band = None
        if constraint is not None:
            band = GroupBand(
                **{k: constraint[k] for k in ("fpr_band", "tpr_band", "max_fpr", "min_tpr", "min_group_count")}
            )
        return cls(
            cast(Rule, rule),
            target_specificity if rule == "target_specificity" else None,
            target_sensitivity if rule == "target_sensitivity" else None,
            band,
            constraint["on_infeasible"] if constraint is not None else "fail",
        )


@dataclass(frozen=True)
class GroupRates:
    """Every group's counts and rates at one threshold (NaN: the group has no such class)."""

    labels: tuple[str, ...]
    n_pos: np.ndarray
    n_neg: np.ndarray
    tpr: np.ndarray
    fpr: np.ndarray
    held: np.ndarray | None = None  # constrained rule: the groups held to the band

    def rows(self) -> list[dict[str, object]]:
        """JSON-ready rows (undefined rates are ``None``)."""
        return [
            {
                "group": label,
                "n_pos": int(self.n_pos[k]),
                "n_neg": int(self.n_neg[k]),
                "tpr": _finite(self.tpr[k]),
                "fpr": _finite(self.fpr[k]),
                "held": None if self.held is None else bool(self.held[k]),
            }
            for k, label in enumerate(self.labels)
        ]


@dataclass(frozen=True)
class OperatingPoint:
    """The chosen threshold and how: ``constraint_met`` is ``None`` for rules without a band;
    ``fallback`` names the rule that chose the threshold when the band could not be met."""

    threshold: float
    rule: OperatingRule
    groups: GroupRates
    constraint_met: bool | None = None
    fallback: Literal["youden"] | None = None
    candidates: int | None = None  # constrained rule: thresholds examined
    feasible: int | None = None  # constrained rule: of those, how many met the band

    def record(self, grouped_by: Sequence[str]) -> dict[str, Any]:
        """The JSON record of the choice (``app.modelpkg.threshold_rule.ThresholdRule``'s keys, less
        the constraint as configured and where it was chosen, which the caller knows)."""
        return {
            "rule": self.rule.rule,
            "target_specificity": self.rule.target_specificity,
            "target_sensitivity": self.rule.target_sensitivity,
            "constraint_met": self.constraint_met,
            "fallback": self.fallback,
            "operating_point": {
                "grouped_by": list(grouped_by),
                "groups": self.groups.rows(),
                "thresholds_examined": self.candidates,
                "thresholds_in_band": self.feasible,
            },
        }


class InfeasibleBand(ValueError):
    """No observed threshold keeps every held group within the band."""


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def group_rates(y: np.ndarray, s: np.ndarray, codes: np.ndarray, labels: Sequence[str], t: float) -> GroupRates:
    """Counts, TPR and FPR of each group (code k; -1: in no group) when ``score >= t`` is positive."""
    g, member = len(labels), codes >= 0
    pred, yk, ck = s[member] >= t, y[member], codes[member]
    n_pos = np.bincount(ck[yk == 1], minlength=g)
    n_neg = np.bincount(ck[yk == 0], minlength=g)
    tp = np.bincount(ck[(yk == 1) & pred], minlength=g)
    fp = np.bincount(ck[(yk == 0) & pred], minlength=g)
    with np.errstate(invalid="ignore", divide="ignore"):
        return GroupRates(tuple(labels), n_pos, n_neg, tp / n_pos, fp / n_neg)


def _candidate_blocks(
    y: np.ndarray, s: np.ndarray, codes: np.ndarray, n_groups: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Every distinct observed score as a threshold, highest first, in blocks: (thresholds, overall
    TP, overall FP, per-group TP, per-group FP), the counts cumulative ("predict s >= threshold")."""
    order = np.argsort(-s, kind="stable")
    ys, ss, cs = y[order], s[order], codes[order]
    starts = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])  # first row of each distinct score
    bounds = np.r_[starts, len(ss)]
    per_block = max(1, _BLOCK_CELLS // max(n_groups, 1))
    carry = np.zeros(2, dtype=np.int64)
    carry_g = np.zeros((2, n_groups), dtype=np.int64)
    for first in range(0, len(starts), per_block):
        last = min(first + per_block, len(starts))
        lo, hi = bounds[first], bounds[last]
        cand = np.repeat(np.arange(last - first), np.diff(bounds[first : last + 1]))
        yb, cb = ys[lo:hi], cs[lo:hi]
        pos = np.cumsum(np.bincount(cand, weights=yb == 1, minlength=last - first)) + carry[0]
        neg = np.cumsum(np.bincount(cand, weights=yb == 0, minlength=last - first)) + carry[1]
        member = cb >= 0
        key = cand[member] * n_groups + cb[member]
        cells = (last - first) * n_groups
        pos_g = np.bincount(key, weights=yb[member] == 1, minlength=cells).reshape(-1, n_groups).cumsum(0) + carry_g[0]
        neg_g = np.bincount(key, weights=yb[member] == 0, minlength=cells).reshape(-1, n_groups).cumsum(0) + carry_g[1]
        carry[:] = pos[-1], neg[-1]
        carry_g[:] = pos_g[-1], neg_g[-1]
        yield ss[starts[first:last]], pos, neg, pos_g, neg_g


def constrained_threshold(
    y: np.ndarray, s: np.ndarray, codes: np.ndarray, labels: Sequence[str], band: GroupBand
) -> tuple[float | None, GroupRates, int, int]:
    """The highest-J observed threshold meeting ``band`` (``None`` if none does), every group's rates
    there (at Youden's threshold when none meets it, with ``held`` marked), candidates and feasible counts."""
    n_groups = len(labels)
    base = group_rates(y, s, codes, labels, np.inf)  # only its counts: who is held
    held = (base.n_pos >= band.min_group_count) & (base.n_neg >= band.min_group_count)
    index = np.flatnonzero(held)
    n_pos_all, n_neg_all = max(int((y == 1).sum()), 1), max(int((y == 0).sum()), 1)
    best_j, best_t, candidates, feasible = -np.inf, None, 0, 0
    for thresholds, tp, fp, tp_g, fp_g in _candidate_blocks(y, s, codes, n_groups):
        tpr, fpr = tp_g[:, index] / base.n_pos[index], fp_g[:, index] / base.n_neg[index]
        ok = np.full(len(thresholds), len(index) > 0)  # no held group: nothing checked, nothing met
        if len(index):
            if band.fpr_band is not None:
                ok &= fpr.max(1) - fpr.min(1) <= band.fpr_band + _EPS
            if band.tpr_band is not None:
                ok &= tpr.max(1) - tpr.min(1) <= band.tpr_band + _EPS
            if band.max_fpr is not None:
                ok &= (fpr <= band.max_fpr + _EPS).all(1)
            if band.min_tpr is not None:
                ok &= (tpr >= band.min_tpr - _EPS).all(1)
        candidates += len(thresholds)
        feasible += int(ok.sum())
        if ok.any():
            j = np.where(ok, tp / n_pos_all - fp / n_neg_all, -np.inf)
            k = int(np.argmax(j))  # first maximum: the higher threshold
            if j[k] > best_j:
                best_j, best_t = float(j[k]), float(thresholds[k])
    at = best_t if best_t is not None else youden_threshold(y, s)
    rates = group_rates(y, s, codes, labels, at)
    return best_t, GroupRates(rates.labels, rates.n_pos, rates.n_neg, rates.tpr, rates.fpr, held), candidates, feasible


def _how_far(rates: GroupRates) -> str:
    """Where the held groups' rates lie at the threshold ``rates`` were taken at, in words."""
    held = rates.held if rates.held is not None else np.ones(len(rates.labels), dtype=bool)

    def spread(values: np.ndarray) -> str:
        values = values[held & np.isfinite(values)]
        return f"{values.min():.3f}–{values.max():.3f}" if len(values) else "undefined"

    names = ", ".join(rates.labels[k] for k in np.flatnonzero(held)) or "none"
    return f"FPR spans {spread(rates.fpr)} and TPR {spread(rates.tpr)} (held: {names})"


def choose_operating_point(
    y: np.ndarray, s: np.ndarray, rule: OperatingRule, codes: np.ndarray, labels: Sequence[str]
) -> OperatingPoint:
    """Apply ``rule`` to labels ``y`` and scores ``s``; ``codes``/``labels`` are the groups whose
    rates are reported (and, for the constrained rule, held to the band).

    Raises ``InfeasibleBand`` when the constrained rule finds no threshold and ``on_infeasible`` is
    ``"fail"``; its message says how far the Youden threshold is from the band."""
    if rule.rule == "constrained":
        assert rule.band is not None
        threshold, rates, candidates, feasible = constrained_threshold(y, s, codes, labels, rule.band)
        met = threshold is not None
        if threshold is None:
            if rule.on_infeasible == "fail":
                raise InfeasibleBand(
                    f"none of {candidates} thresholds keeps {rule.band.describe()}; at Youden's threshold the "
                    f"held groups' {_how_far(rates)}. Widen the band, "
                    f"or set on_infeasible 'youden' to accept an out-of-band model (recorded as such)"
                )
            threshold = youden_threshold(y, s)
        return OperatingPoint(
            threshold=threshold,
            rule=rule,
            groups=rates,
            constraint_met=met,
            fallback=None if met else "youden",
            candidates=candidates,
            feasible=feasible,
        )
    if rule.rule == "youden":
        threshold = youden_threshold(y, s)
    elif rule.rule == "target_specificity":
        assert rule.target_specificity is not None
        threshold = specificity_threshold(y, s, rule.target_specificity)
    else:
        assert rule.target_sensitivity is not None
        threshold = sensitivity_threshold(y, s, rule.target_sensitivity)
    return OperatingPoint(threshold=threshold, rule=rule, groups=group_rates(y, s, codes, labels, threshold))


def exit_index(probs: np.ndarray, thresholds: Sequence[float | None]) -> np.ndarray:
    """Exit each sample takes: the first exit with confidence ≥ its θ (None: never), else the last."""
    n, n_exits = probs.shape
    chosen = np.full(n, n_exits - 1)
    undecided = np.ones(n, dtype=bool)
    confidence = np.maximum(probs, 1.0 - probs)
    for e, theta in enumerate(thresholds[: n_exits - 1]):
        if theta is None:
            continue
        leave = undecided & (confidence[:, e] >= theta)
        chosen[leave] = e
        undecided &= ~leave
    return chosen
