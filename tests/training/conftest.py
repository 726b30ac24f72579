"""Fixtures of the training tests (helpers live in ``training_helpers``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from training_helpers import MakeCohort, write_cohort

from app.cohorts.cache import CohortArrays


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from a second thread, and on a shared, busy CI machine OpenMP's
    spinning barriers make two threads several times slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def make_cohort(tmp_path: Path) -> MakeCohort:
    counter = iter(range(1000))

    def make(**kwargs: object) -> CohortArrays:
        return write_cohort(tmp_path / f"cohort{next(counter)}", **kwargs)  # type: ignore[arg-type]

    return make
