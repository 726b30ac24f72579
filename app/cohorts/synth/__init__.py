"""Synthetic cohorts with planted, documented biases (``fairaudit synth derm|cxr``)."""
