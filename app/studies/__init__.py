"""Studies: cross-validated, multi-seed training of several configs with a pooled out-of-fold audit."""
