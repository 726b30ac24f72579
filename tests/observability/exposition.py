"""Reading the Prometheus text format in tests."""

from __future__ import annotations


def samples(text: str) -> dict[str, float]:
    """``name{labels}`` -> value of every sample line (labels in the order the exposition sorts them)."""
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line[:1] != "#"}
