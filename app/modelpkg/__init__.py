"""The model folder format: what a published model version is, independent of who wrote or runs it.

Training writes a folder through this package, serving and the evaluation job read and verify it
through this package, so the three agree on one typed ``model.json``, one preprocessing formula and
one way of checking the files. It imports nothing else from ``app`` (and neither torch, FastAPI nor
SQLAlchemy): every layer may depend on it. See ``docs/model-format.md``.
"""
