"""Deployment gates: an organisation's fairness policy, checked before a model may take an alias."""
