"""Training groups: the cells of the product of the sensitive attributes, as flat integer codes.

A sample with a missing value (``None``) in any training attribute gets code ``-1``: it joins no
group. Such samples are still trained on with BCE, sampled in their own stratum, and count among
"all negatives" of the pairwise-EO hinge (PF_k compares a group's positives against every
negative), but they are never a candidate worst group k*.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

MISSING = -1


@dataclass(frozen=True)
class GroupEncoding:
    attributes: tuple[str, ...]
    codes: np.ndarray  # (n,) int64; MISSING where any attribute is missing
    labels: tuple[str, ...]  # label of code k

    @property
    def n_groups(self) -> int:
        return len(self.labels)


def encode_groups(attributes: Mapping[str, np.ndarray], names: Sequence[str]) -> GroupEncoding:
    """Number the observed combinations of ``names`` (sorted, so codes are stable across runs)."""
    columns = [np.asarray(attributes[name], dtype=object) for name in names]
    n = len(columns[0])
    keys = [tuple(col[i] for col in columns) for i in range(n)]
    observed = sorted({k for k in keys if all(v is not None for v in k)}, key=lambda k: tuple(map(str, k)))
    index = {k: i for i, k in enumerate(observed)}
    codes = np.fromiter((index.get(k, MISSING) for k in keys), dtype=np.int64, count=n)
    if len(names) == 1:
        labels = tuple(str(k[0]) for k in observed)
    else:
        labels = tuple(", ".join(f"{a}={v}" for a, v in zip(names, k, strict=True)) for k in observed)
    return GroupEncoding(attributes=tuple(names), codes=codes, labels=labels)
