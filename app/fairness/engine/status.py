"""Status of a value: ``ok``, ``undefined`` (empty denominator) or ``insufficient`` (too few cases)."""

from __future__ import annotations

import numpy as np

OK = "ok"
UNDEFINED = "undefined"
INSUFFICIENT = "insufficient"


def status_of(denominator: np.ndarray, min_count: int) -> np.ndarray:
    """Per entry: undefined when the denominator is 0, insufficient below ``min_count``, else ok."""
    den = np.asarray(denominator)
    return np.where(den == 0, UNDEFINED, np.where(den < min_count, INSUFFICIENT, OK)).astype(object)


def worst(*statuses: np.ndarray) -> np.ndarray:
    """Element-wise worst of several status arrays (undefined > insufficient > ok)."""
    rank = {OK: 0, INSUFFICIENT: 1, UNDEFINED: 2}
    names = np.array([OK, INSUFFICIENT, UNDEFINED], dtype=object)
    codes = np.max([[rank[s] for s in st] for st in statuses], axis=0)
    return names[np.asarray(codes, dtype=np.int64)]
