"""Predictions files with a planted subgroup gap, and posting them as audits."""

from __future__ import annotations

import json

import numpy as np

CONFIG = {"name": "vendor model", "sensitive_attributes": ["sex", "site"], "threshold": 0.5}


def predictions_csv(n: int = 400, seed: int = 0, bias: float = 0.35, ids: bool = True) -> str:
    """Scores that separate the classes well for men and worse for women (a planted gap)."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], n)
    site = rng.choice(["a", "b", "c"], n)
    y = rng.integers(0, 2, n)
    signal = np.where(sex == "male", 1.0, 1.0 - 2 * bias)
    score = 1 / (1 + np.exp(-(1.2 * signal * (2 * y - 1) + rng.normal(0, 1, n))))
    header = "sample_id,y_true,y_score,sex,site" if ids else "y_true,y_score,sex,site"
    lines = [header] + [(f"s{i}," if ids else "") + f"{y[i]},{score[i]:.6f},{sex[i]},{site[i]}" for i in range(n)]
    return "\n".join(lines) + "\n"


def post_audit(client, headers, csv_text: str, config: dict | None = None):
    return client.post(
        "/v1/audits",
        headers=headers,
        files={"predictions": ("p.csv", csv_text.encode())},
        data={"config": json.dumps(config or CONFIG)},
    )
