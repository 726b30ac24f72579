"""Per-group statistics of one score column for a block of resample weights, all groupings at once.

The same code computes point estimates (weights all 1) and bootstrap resamples (multinomial counts),
so intervals always describe exactly the estimator that is reported.

AUC and PF are weighted Mann–Whitney sums over an order fixed once per column (no per-resample sort):
for positive p, ``2·below(p) + tied(p)`` (negatives of weight below its score, plus those tied) is
read from a cumulative sum of negative weights at two pre-computed positions. Summing
``w_p·(2·below + tied)`` over a group's positives gives twice the Mann–Whitney U, so
AUC = U / (W⁺·W⁻) with ties counting ½ (midranks). O(n log n) to plan, O(n) per resample.

Rates, ECE and Brier come from weighted sums over contiguous segments of samples ordered by
(cell, label, ECE bin, prediction): every per-group quantity is a sum of segment sums.

Stratified weights (each stratum's total weight equals its size) keep n, n_pos and n_neg of every
group the same in every resample, so they are taken from the data. Cluster resamples and fold masks
do not: with ``weighted_totals`` every denominator is summed from the weights instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.fairness.engine.groups import Design, Grouping

N_BINS = 10  # ECE: equal-width bins on [0, 1]


def segment_sums(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Sums of ``values[:, bounds[k]:bounds[k+1]]`` for each k (float64); 0 for empty segments."""
    out = np.zeros((values.shape[0], len(bounds) - 1), dtype=np.float64)
    nonempty = bounds[1:] > bounds[:-1]
    if nonempty.any():
        out[:, nonempty] = np.add.reduceat(values, bounds[:-1][nonempty], axis=1)
    return out


LANES = 4  # resamples per packed word (bytes of a uint32)


class WeightBlock:
    """A ``(b, n)`` uint8 block of resample weights (internal order) that many passes gather from.

    Every rank pass reads the weights in its own sample order, and ``np.take`` along a row moves one
    byte per index: that gather was most of the bootstrap's time. The block is therefore also kept
    sample-major, ``LANES`` resamples to a uint32 word (8 bits each), so a gather moves whole words
    (``b`` bytes per index), and the picked words are split back into rows by shifts, which numpy
    vectorises. It is packed once, on first use, and shared by every column and pass of the block.
    Gathers return exact int32 counts, the same numbers whichever path produced them.
    """

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows
        self._words: np.ndarray | None = None

    @classmethod
    def of(cls, weights: np.ndarray | WeightBlock) -> WeightBlock:
        return weights if isinstance(weights, WeightBlock) else cls(weights)

    @property
    def packable(self) -> bool:
        """Packing pays from a few resamples up; one row (point estimates) is gathered directly."""
        return self.rows.dtype == np.uint8 and self.rows.shape[0] >= LANES

    def words(self) -> np.ndarray:
        """``(n, ceil(b / LANES))`` uint32; bits ``8j..8j+7`` of word ``i`` hold resample ``j·width + i``."""
        if self._words is None:
            b, n = self.rows.shape
            width = -(-b // LANES)
            words = np.zeros((width, n), dtype=np.uint32)
            for j in range(LANES):
                part = self.rows[j * width : (j + 1) * width]
                words[: len(part)] |= part.astype(np.uint32) << np.uint32(8 * j)
            self._words = np.ascontiguousarray(words.T)
        return self._words

    def gather(self, index: np.ndarray) -> np.ndarray:
        """``(b, len(index))`` int32: the weights of samples ``index``, in that order."""
        if not self.packable:
            return np.take(self.rows, index, axis=1).astype(np.int32)
        picked = np.ascontiguousarray(np.take(self.words(), index, axis=0).T)  # (width, m)
        width, m = picked.shape
        out = np.empty((LANES, width, m), dtype=np.int32)
        lanes = out.view(np.uint32)
        np.bitwise_and(picked, 0xFF, out=lanes[0])
        for j in range(1, LANES - 1):
            np.right_shift(picked, 8 * j, out=lanes[j])
            np.bitwise_and(lanes[j], 0xFF, out=lanes[j])
        np.right_shift(picked, 8 * (LANES - 1), out=lanes[LANES - 1])  # the top byte needs no mask
        return out.reshape(LANES * width, m)[: self.rows.shape[0]]


@dataclass(frozen=True)
class Aggregator:
    """Sums columns of a ``(b, m)`` array by key (keys -1 are dropped) into ``(b, n_keys)``."""

    take: np.ndarray
    bounds: np.ndarray

    @classmethod
    def build(cls, key: np.ndarray, n_keys: int) -> Aggregator:
        kept = np.flatnonzero(key >= 0)
        take = kept[np.argsort(key[kept], kind="stable")]
        bounds = np.concatenate([[0], np.cumsum(np.bincount(key[kept], minlength=n_keys))])
        return cls(take, bounds.astype(np.int64))

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return segment_sums(values[:, self.take], self.bounds)


@dataclass(frozen=True)
class RankPass:
    """Index arrays for weighted Mann–Whitney sums: positives summed by ``sum group``, each against
    the negatives of one ``negative group`` (its own group, or everyone for PF).

    ``neg`` and ``pos`` are internal sample positions (they index the weights directly). ``C`` below
    is the cumulative weight of ``neg`` with a leading 0, so ``C[i]`` is the weight of the first ``i``
    negatives in (negative group, score) order.
    """

    neg: np.ndarray  # negatives, by negative group then score
    pos: np.ndarray  # positives, by sum group then score
    pos_bounds: np.ndarray  # (n_sum_groups + 1,)
    lo: np.ndarray  # per positive: C index just past the lower-scored negatives of its negative group
    tie: np.ndarray  # positives that tie with at least one negative of their negative group
    tie_hi: np.ndarray  # for those: C index just past the tied negatives
    base: np.ndarray  # per sum group: C index where its negative group starts
    n_pos: np.ndarray  # per sum group

    @classmethod
    def build(
        cls,
        order: np.ndarray,
        rank: np.ndarray,
        is_pos: np.ndarray,
        neg_group: np.ndarray,
        sum_group: np.ndarray,
        n_sum_groups: int,
        sum_to_neg: np.ndarray,
    ) -> RankPass:
        """Arguments other than ``order`` are in score order (``order[i]``: internal position of the
        i-th lowest score); ``rank`` is the dense rank of each score. Groups -1 are left out."""
        n_ranks = int(rank[-1]) + 1 if len(rank) else 1
        neg_all = np.flatnonzero(~is_pos & (neg_group >= 0))
        neg = neg_all[np.argsort(neg_group[neg_all], kind="stable")]
        neg_key = neg_group[neg] * n_ranks + rank[neg]
        pos_all = np.flatnonzero(is_pos & (sum_group >= 0))
        pos = pos_all[np.argsort(sum_group[pos_all], kind="stable")]
        pos_key = sum_to_neg[sum_group[pos]] * n_ranks + rank[pos]
        lo = np.searchsorted(neg_key, pos_key, side="left")
        hi = np.searchsorted(neg_key, pos_key, side="right")
        tie = np.flatnonzero(hi > lo)
        n_neg_groups = int(sum_to_neg.max()) + 1 if len(sum_to_neg) else 0
        neg_counts = np.bincount(neg_group[neg], minlength=n_neg_groups)
        neg_start = np.concatenate([[0], np.cumsum(neg_counts)])
        n_pos = np.bincount(sum_group[pos], minlength=n_sum_groups)
        return cls(
            neg=order[neg],
            pos=order[pos],
            pos_bounds=np.concatenate([[0], np.cumsum(n_pos)]).astype(np.int64),
            lo=lo,
            tie=tie,
            tie_hi=hi[tie],
            base=neg_start[sum_to_neg].astype(np.int64),
            n_pos=n_pos,
        )

    def twice_u(self, weights: np.ndarray | WeightBlock, weighted_totals: bool = False) -> np.ndarray:
        """``(b, n_sum_groups)``: 2 × weighted Mann–Whitney U of each sum group.

        2U = Σ_p w_p·(2·C[lo_p] + tied_p) − 2·C[base]·Σ_p w_p, the last term removing the negatives of
        earlier negative groups that ``C`` also counts. Σ_p w_p is the group's n_pos for stratified
        weights; ``weighted_totals`` sums it from the weights (cluster resamples, fold masks).
        Every term is an integer summed exactly (int64 below 2**53 in float64), so the result does
        not depend on how the weights were gathered.
        """
        block = WeightBlock.of(weights)
        b = block.rows.shape[0]
        cum = np.empty((b, len(self.neg) + 1), dtype=np.int32)
        cum[:, 0] = 0
        np.cumsum(block.gather(self.neg), axis=1, out=cum[:, 1:])
        wp = block.gather(self.pos)
        below = _products(np.take(cum, self.lo, axis=1), wp, int(cum[:, -1].max(initial=0)))
        sums = 2.0 * segment_sums(below, self.pos_bounds)
        if len(self.tie):
            tied = cum[:, self.tie_hi] - cum[:, self.lo[self.tie]]
            tied_weighted = np.multiply(wp[:, self.tie], tied, dtype=np.int64)
            tie_bounds = np.searchsorted(self.tie, self.pos_bounds)
            sums += segment_sums(tied_weighted, tie_bounds)
        pos_weight = segment_sums(wp, self.pos_bounds) if weighted_totals else self.n_pos
        return sums - 2.0 * cum[:, self.base] * pos_weight


def _products(counts: np.ndarray, weights: np.ndarray, largest: int) -> np.ndarray:
    """``weights · counts`` exactly, in place in int32 when no product can reach 2**31 (a weight is
    at most 255 and a count at most ``largest``), else in int64."""
    if largest * 255 < 2**31:
        return np.multiply(counts, weights, out=counts).astype(np.int64)
    return np.multiply(counts, weights, dtype=np.int64)


@dataclass(frozen=True)
class GroupingPlan:
    """What one grouping needs from a column: its rank pass and its aggregators over segments/cells."""

    grouping: Grouping
    within: RankPass | None  # None for overall (read from the PF pass)
    pf: Aggregator  # cells -> groups
    tp: Aggregator  # segments -> groups
    fp: Aggregator
    ece: Aggregator  # segments -> group × bin
    brier: Aggregator  # segments -> groups
    pos: Aggregator  # positive segments -> groups (weighted totals)
    neg: Aggregator  # negative segments -> groups
    n: np.ndarray
    n_pos: np.ndarray
    n_neg: np.ndarray


@dataclass(frozen=True)
class ColumnPlan:
    """Everything fixed about one score column: its sample order, rank passes, segments.

    Segments are in the column's *local* order: the design's order re-sorted by score within each
    stratum (a move within blocks of a few thousand samples, so permuting the weights is cheap and
    cache-friendly). In that order (cell, label, ECE bin, prediction) segments are contiguous.
    ``local`` is None when the design's order already is the local order (the column the design was
    sorted by, e.g. the served policy). The rank passes index the design's internal order directly:
    they gather the weights in their own orders anyway, so composing with ``local`` is free.
    """

    local: np.ndarray | None
    pf_pass: RankPass  # all positives by finest cell, against all negatives
    seg_bounds: np.ndarray  # (cell, label, bin, prediction) segments
    seg_error: np.ndarray  # score - label
    groupings: tuple[GroupingPlan, ...]
    n_pos: int
    n_neg: int


def ece_bins(scores: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Equal-width bin of each score on [0, 1]; a score of exactly 1 falls in the last bin."""
    return np.minimum((scores * n_bins).astype(np.int64), n_bins - 1)


def plan_column(
    scores: np.ndarray, y: np.ndarray, design: Design, threshold: float | np.ndarray, n_bins: int = N_BINS
) -> ColumnPlan:
    """Plan one column (``scores``, ``y`` and a per-sample ``threshold`` in the design's internal order).

    Segments need the decision non-decreasing within a cell x label x ECE bin: a float threshold
    gives that by sorting on the score; per-sample thresholds sort on the decision first (the same
    order when the thresholds are all equal).
    """
    label = y.astype(np.int64)
    if np.ndim(threshold) == 0:
        local = np.lexsort((scores, design.cell * 2 + label))
    else:
        decided = scores >= threshold
        local = np.lexsort((scores, decided, ece_bins(scores, n_bins), design.cell * 2 + label))
        threshold = np.asarray(threshold)[local]
    scores, label, cell = scores[local], label[local], design.cell[local]
    is_pos = label.astype(bool)
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    rank = np.concatenate([[0], np.cumsum(sorted_scores[1:] != sorted_scores[:-1])]).astype(np.int64)
    pos_s = is_pos[order]
    internal = local[order]  # the rank passes index the block's weights directly (internal order)
    everyone = np.zeros(len(scores), dtype=np.int64)
    pf_pass = RankPass.build(
        internal, rank, pos_s, everyone, cell[order], design.n_cells, np.zeros(design.n_cells, dtype=np.int64)
    )

    pred = (scores >= threshold).astype(np.int64)
    seg_key = ((cell * 2 + label) * n_bins + ece_bins(scores, n_bins)) * 2 + pred  # non-decreasing
    starts = np.flatnonzero(np.concatenate([[True], seg_key[1:] != seg_key[:-1]]))
    seg = seg_key[starts]
    seg_pred, seg_bin = seg % 2, (seg // 2) % n_bins
    seg_label, seg_cell = (seg // (2 * n_bins)) % 2, seg // (4 * n_bins)

    plans = []
    for g in design.groupings:
        k = g.n_groups
        codes = g.codes[local]
        cell_group = design.cell_to_group(g)
        seg_group = cell_group[seg_cell]
        within = None
        if g.kind != "overall":
            codes_s = codes[order]
            within = RankPass.build(internal, rank, pos_s, codes_s, codes_s, k, np.arange(k))
        n = np.bincount(codes[codes >= 0], minlength=k)
        n_pos = np.bincount(codes[(codes >= 0) & is_pos], minlength=k)
        ece_key = np.where(seg_group >= 0, seg_group * n_bins + seg_bin, -1)
        plans.append(
            GroupingPlan(
                grouping=g,
                within=within,
                pf=Aggregator.build(cell_group, k),
                tp=Aggregator.build(np.where((seg_label == 1) & (seg_pred == 1), seg_group, -1), k),
                fp=Aggregator.build(np.where((seg_label == 0) & (seg_pred == 1), seg_group, -1), k),
                ece=Aggregator.build(ece_key, k * n_bins),
                brier=Aggregator.build(seg_group, k),
                pos=Aggregator.build(np.where(seg_label == 1, seg_group, -1), k),
                neg=Aggregator.build(np.where(seg_label == 0, seg_group, -1), k),
                n=n,
                n_pos=n_pos,
                n_neg=n - n_pos,
            )
        )
    identity = bool((local == np.arange(len(local))).all())
    return ColumnPlan(
        local=None if identity else local,
        pf_pass=pf_pass,
        seg_bounds=np.concatenate([starts, [len(scores)]]).astype(np.int64),
        seg_error=scores - label,
        groupings=tuple(plans),
        n_pos=int(is_pos.sum()),
        n_neg=int((~is_pos).sum()),
    )


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with NaN where den == 0 (an empty denominator is undefined, never 0)."""
    den = np.asarray(den, dtype=np.float64)  # broadcast by the ufunc itself: called per chunk and metric
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


GroupArrays = dict[str, np.ndarray]  # metric -> (b, n_groups)


def column_block(
    plan: ColumnPlan,
    weights: np.ndarray | WeightBlock,
    n_bins: int = N_BINS,
    dtype: type = np.float32,
    weighted_totals: bool = False,
) -> dict[str, GroupArrays]:
    """Per-grouping, per-group statistics for a ``(b, n)`` uint8 block of weights (internal order),
    or that block as a ``WeightBlock`` shared with other columns.

    Returns ``{attribute: {metric: (b, n_groups)}}`` with metrics auc, pf, pf_rest, tpr, fpr, tnr,
    selection_rate, ece, brier, and the counts tp, fp. NaN marks an empty denominator.
    Rank sums are exact integers whatever ``dtype``; ``dtype`` only sets the precision of the
    score-weighted sums (ECE, Brier): float32 halves their cost in the bootstrap, where a relative
    error of 1e-6 is far below the resampling noise; point estimates use float64.
    ``weighted_totals``: denominators are the weights' own group totals (cluster resamples, fold
    masks: integer sums, exact in float32 below 2**24) rather than the data's counts.
    """
    block = WeightBlock.of(weights)
    twice_u_cells = plan.pf_pass.twice_u(block)  # (b, n_cells): each cell's positives vs all negatives
    twice_u_all = twice_u_cells.sum(axis=1, keepdims=True)

    local = block.rows if plan.local is None else block.gather(plan.local)
    wf: np.ndarray = local.astype(dtype)
    error: np.ndarray = plan.seg_error.astype(dtype)
    seg_w = segment_sums(wf, plan.seg_bounds)
    wf *= error
    seg_err = segment_sums(wf, plan.seg_bounds)
    wf *= error
    seg_sq = segment_sums(wf, plan.seg_bounds)

    total_pos: np.ndarray | int = plan.n_pos
    total_neg: np.ndarray | int = plan.n_neg
    if weighted_totals:
        everyone = plan.groupings[0]  # the overall grouping: one group holding every sample
        total_pos = everyone.pos(seg_w).astype(np.float64)
        total_neg = everyone.neg(seg_w).astype(np.float64)
    out: dict[str, GroupArrays] = {}
    for gp in plan.groupings:
        k = gp.grouping.n_groups
        n_pos: np.ndarray = gp.n_pos
        n_neg: np.ndarray = gp.n_neg
        if weighted_totals:
            n_pos, n_neg = gp.pos(seg_w).astype(np.float64), gp.neg(seg_w).astype(np.float64)
        n = n_pos + n_neg
        twice_u_pf = gp.pf(twice_u_cells)
        twice_u = twice_u_pf if gp.within is None else gp.within.twice_u(block, weighted_totals)
        tp, fp = gp.tp(seg_w), gp.fp(seg_w)
        fpr = _ratio(fp, n_neg)
        ece_parts = np.abs(gp.ece(seg_err)).reshape(len(local), k, n_bins).sum(axis=2)
        out[gp.grouping.attribute] = {
            "auc": _ratio(twice_u, 2.0 * n_pos * n_neg),
            "pf": _ratio(twice_u_pf, 2.0 * n_pos * total_neg),
            "pf_rest": _ratio(twice_u_all - twice_u_pf, 2.0 * (total_pos - n_pos) * total_neg),
            "tpr": _ratio(tp, n_pos),
            "fpr": fpr,
            "tnr": 1.0 - fpr,
            "selection_rate": _ratio(tp + fp, n),
            "ece": _ratio(ece_parts, n),
            "brier": _ratio(gp.brier(seg_sq), n),
            "tp": tp,
            "fp": fp,
        }
    return out


def point_block(plan: ColumnPlan, n_bins: int = N_BINS) -> dict[str, GroupArrays]:
    """Point estimates: :func:`column_block` with every weight 1 (one row)."""
    return column_block(plan, np.ones((1, len(plan.seg_error)), dtype=np.uint8), n_bins, np.float64)
