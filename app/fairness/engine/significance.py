"""Does one group differ from the rest?  Tests per group and Holm adjustment within an attribute.

Choices (documented in the report):
- TPR, FPR and selection rate: two-sided two-proportion z-test (pooled), group vs everyone else in
  the evaluated population (the rest includes samples whose attribute is missing). Exact enough at
  the counts a group must reach to be ``ok``, and available in closed form.
- PF: Wald test with the bootstrap standard error of PF_group − PF_rest, where PF_rest is the AUC of
  all other positives against all negatives; both come from the same stratified resamples.
  A percentile-count p-value is floored at 2/(B+1), which Holm would inflate beyond any useful level
  for attributes with many groups; the Wald form keeps small p-values small.
- Family: the tested groups of one attribute (or the intersection) for one metric; Holm controls the
  family-wise error rate without independence assumptions. Non-``ok`` groups are not tested.
"""

from __future__ import annotations

import warnings
from statistics import NormalDist

import numpy as np

_NORMAL = NormalDist()


def two_sided_p(z: np.ndarray) -> np.ndarray:
    """2·(1 − Φ(|z|)); NaN stays NaN."""
    z = np.asarray(z, dtype=np.float64)
    out = np.full(z.shape, np.nan)
    finite = np.isfinite(z)
    out[finite] = [2.0 * (1.0 - _NORMAL.cdf(abs(v))) for v in z[finite]]
    out[np.isinf(z)] = 0.0
    return out


def two_proportion(
    x1: np.ndarray, n1: np.ndarray, x2: np.ndarray, n2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Difference p1 − p2, pooled z and two-sided p; NaN where a sample is empty.

    When the pooled proportion is 0 or 1 both proportions are equal: z = 0, p = 1.
    """
    x1, n1, x2, n2 = (np.asarray(a, dtype=np.float64) for a in (x1, n1, x2, n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = x1 / n1 - x2 / n2
        pooled = (x1 + x2) / (n1 + n2)
        se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
        z = np.where(se > 0, diff / se, 0.0)
    empty = (n1 == 0) | (n2 == 0)
    z = np.where(empty, np.nan, z)
    return np.where(empty, np.nan, diff), z, two_sided_p(z)


def bootstrap_wald(point: np.ndarray, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z = point / SD(samples) and its two-sided p, per column of ``samples`` (resamples × tests).

    A zero standard error gives p = 1 for a zero difference (identical inputs) and p = 0 otherwise.
    Resamples where a statistic is undefined (NaN, only in a clustered bootstrap) are left out.
    """
    point = np.asarray(point, dtype=np.float64)
    if samples.shape[0] < 2:
        nan = np.full(point.shape, np.nan)
        return nan, nan.copy()
    if np.isnan(samples).any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
            se = np.nanstd(samples, axis=0, ddof=1)
    else:
        se = np.std(samples, axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, point / se, np.where(point == 0, 0.0, np.inf * np.sign(point)))
    z = np.where(np.isnan(point) | np.isnan(se), np.nan, z)
    return z, two_sided_p(z)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values over the non-NaN entries (NaN entries stay NaN)."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = len(tested)
    if m == 0:
        return out
    order = tested[np.argsort(p[tested], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out[order] = adjusted
    return out
