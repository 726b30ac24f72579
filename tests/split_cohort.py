"""A synthetic split cohort shared by the split and fold tests: only labels, groups and patients."""

from __future__ import annotations

import numpy as np


def split_cohort(n: int = 3000, seed: int = 0) -> tuple[list[int], list[tuple[str]], list[str | None]]:
    """Patients with 1–several images (a tenth without a patient id), groups of 60/30/10 %, 20 % positive."""
    rng = np.random.default_rng(seed)
    patients = [f"p{i}" if i % 10 else None for i in rng.integers(0, n // 3, n)]
    groups = [(str(g),) for g in rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1])]
    labels = [int(v) for v in rng.random(n) < 0.2]
    return labels, groups, patients
