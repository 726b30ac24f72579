"""Synthetic cohorts with planted, documented biases (``fairaudit synth derm|cxr``): binary,
multi-class and multi-label."""
