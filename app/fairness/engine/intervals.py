"""Confidence intervals: Wilson for rates, percentile for bootstrap distributions of smooth
statistics, a symmetric interval centred on the estimate for extremum statistics (gaps), normal for
means."""

from __future__ import annotations

import warnings
from statistics import NormalDist

import numpy as np


def z_value(confidence: float) -> float:
    """Two-sided standard-normal quantile, e.g. 1.96 for 0.95."""
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson(successes: np.ndarray, n: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of ``successes / n``; NaN where n == 0.

    Chosen over the Wald interval because it stays inside [0, 1] and keeps near-nominal coverage at
    the small counts and extreme rates that subgroup audits produce.
    """
    x = np.asarray(successes, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    z = z_value(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / m
        denom = 1.0 + z * z / m
        centre = (p + z * z / (2.0 * m)) / denom
        half = z * np.sqrt(p * (1.0 - p) / m + z * z / (4.0 * m * m)) / denom
        # Exact at the ends (x = 0 or x = n) and never excluding p through rounding.
        low = np.where(x == 0, 0.0, np.clip(np.minimum(centre - half, p), 0.0, 1.0))
        high = np.where(x == m, 1.0, np.clip(np.maximum(centre + half, p), 0.0, 1.0))
    return np.where(m > 0, low, np.nan), np.where(m > 0, high, np.nan)


def _quantiles(samples: np.ndarray, q: list[float]) -> np.ndarray:
    """Quantiles ``q`` over axis 0, leaving NaN resamples out; NaN where every resample is NaN."""
    if samples.shape[0] == 0:
        return np.full((len(q), *samples.shape[1:]), np.nan)
    if not np.isnan(samples).any():
        return np.quantile(samples, q, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        return np.nanquantile(samples, q, axis=0)


def percentile(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over axis 0 of bootstrap ``samples``.

    Resamples where a statistic is undefined (NaN: a cluster resample that drew no positive of a
    group) are left out; NaN where every resample is NaN.
    """
    alpha = 1.0 - confidence
    low, high = _quantiles(samples, [alpha / 2.0, 1.0 - alpha / 2.0])
    return low, high


def centred(
    samples: np.ndarray, estimate: np.ndarray, confidence: float, bounds: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """For extremum statistics (max − min gaps, worst-group and ratio gaps), clipped to ``bounds``:

        [est − h − max(b, 0),  est + h + max(−b, 0)],  h = max(q_high − est, est − q_low),
        b = median of the resamples − est.

    Their bootstrap distribution sits on the far side of the estimate (the largest of several noisy
    values is biased upwards, and a resample biases it again), so the percentile interval can
    exclude its own estimate and misses a true gap near zero almost always. est ± h is the union of
    the percentile interval and its reflection about the estimate (the "basic" interval, which
    undoes the bias once); it is widened, on the side away from the bias, by the bootstrap's own
    estimate of that bias, which the basic interval undercorrects when groups are small and alike.
    The interval contains the estimate by construction and covers at least as often as the
    percentile and basic intervals (docs/metrics.md gives the simulated coverage).
    """
    low, median, high = _quantiles(samples, [(1.0 - confidence) / 2.0, 0.5, (1.0 + confidence) / 2.0])
    point = np.asarray(estimate, dtype=np.float64)
    half = np.maximum(high - point, point - low)
    bias = median - point
    return (
        np.clip(point - half - np.maximum(bias, 0.0), *bounds),
        np.clip(point + half + np.maximum(-bias, 0.0), *bounds),
    )


def normal_mean(mean: np.ndarray, sd: np.ndarray, n: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """mean ± z·sd/√n (for means of bounded per-sample quantities such as compute cost)."""
    z = z_value(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = z * np.asarray(sd) / np.sqrt(np.asarray(n, dtype=np.float64))
    return np.asarray(mean) - half, np.asarray(mean) + half
