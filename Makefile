# The two set-up commands of the README. Both create .venv on first use and reinstall only when
# pyproject.toml (or this file) changes. The Ray extra is installed too, so the Ray executor's tests run.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: serve test bench

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[test,ray]'
	touch $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/fairaudit serve

test: $(STAMP)
	$(VENV)/bin/ruff check app tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports  # the dependency rules of docs/architecture.md ([tool.importlinter] in pyproject.toml)
	$(VENV)/bin/pytest -m "not gpu" -n auto --dist loadfile  # one worker per core; a file's tests share a worker

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/bench_metrics.py
	$(VENV)/bin/python benchmarks/bench_ingest.py
	$(VENV)/bin/python benchmarks/bench_train.py
	$(VENV)/bin/python benchmarks/bench_serve.py
