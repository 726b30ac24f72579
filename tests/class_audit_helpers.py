"""Multi-class and multi-label predictions files for audits (``POST /v1/audits``), with a planted gap:
skin type VI gets less signal for its true class (multiclass) or findings (multilabel)."""

from __future__ import annotations

import numpy as np

CLASSES = ("benign", "melanoma", "nevus")
FINDINGS = ("edema", "effusion")
MULTICLASS_CONFIG = {"name": "derm vendor", "task": "multiclass", "sensitive_attributes": ["skin"]}
MULTILABEL_CONFIG = {
    "name": "cxr vendor",
    "task": "multilabel",
    "sensitive_attributes": ["skin"],
    "threshold_rule": "youden",
}


def multiclass_csv(n: int = 300, seed: int = 0, bias: float = 1.2) -> str:
    rng = np.random.default_rng(seed)
    skin = rng.choice(["I-II", "V-VI"], n)
    y = rng.integers(0, len(CLASSES), n)
    logits = rng.normal(0, 1, (n, len(CLASSES)))
    logits[np.arange(n), y] += np.where(skin == "V-VI", 2.0 - bias, 2.0)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    header = ["sample_id", "y_true", *(f"score_{c}" for c in CLASSES), "skin"]
    lines = [",".join(header)]
    for i in range(n):
        scores = np.round(probs[i], 8)
        scores[-1] = round(1.0 - scores[:-1].sum(), 8)  # rounded, still summing to 1
        lines.append(",".join([f"s{i}", CLASSES[y[i]], *(repr(float(p)) for p in scores), skin[i]]))
    return "\n".join(lines) + "\n"


def multilabel_csv(n: int = 300, seed: int = 0, unknown: float = 0.1) -> str:
    rng = np.random.default_rng(seed)
    skin = rng.choice(["I-II", "V-VI"], n)
    y = (rng.random((n, len(FINDINGS))) < 0.4).astype(int)
    signal = np.where(skin == "V-VI", 0.8, 2.0)[:, None]
    scores = 1 / (1 + np.exp(-(rng.normal(0, 1, y.shape) + signal * (2 * y - 1))))
    hidden = rng.random(y.shape) < unknown
    hidden[:, 0] &= ~hidden[:, 1]  # every row knows at least one finding
    header = ["sample_id", *(f"y_true_{f}" for f in FINDINGS), *(f"score_{f}" for f in FINDINGS), "skin"]
    lines = [",".join(header)]
    for i in range(n):
        labels = ["" if hidden[i, f] else str(y[i, f]) for f in range(len(FINDINGS))]
        lines.append(",".join([f"s{i}", *labels, *(f"{s:.6f}" for s in scores[i]), skin[i]]))
    return "\n".join(lines) + "\n"
