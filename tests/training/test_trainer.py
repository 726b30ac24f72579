"""The trainer: reproducible from its seed, resumable after a crash, cancellable, reporting progress."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from training_helpers import small_config, write_cohort

from app.cohorts.cache import CohortArrays
from app.core.errors import ConflictError
from app.training.config import TrainingConfig
from app.training.groups import encode_groups
from app.training.networks import build_network
from app.training.progress import Cancelled, ProgressEvent, never_cancel
from app.training.trainer import FitResult, Trainer

CONFIG = small_config(method="fair_multi_exit_pairwise_eo", epochs=3, sensitive_attributes=["sex", "age_group"])


def make_trainer(
    cohort: CohortArrays,
    config: TrainingConfig,
    work_dir: Path,
    should_cancel: Callable[[], bool] = never_cancel,
    progress: Callable[[ProgressEvent], None] = lambda e: None,
) -> Trainer:
    torch.manual_seed(config.seed)
    net = build_network("small", in_channels=cohort.channels, image_size=32, multi_exit=config.multi_exit)
    groups = encode_groups(cohort.attributes, config.sensitive_attributes)
    return Trainer(
        net,
        config,
        cohort,
        groups,
        device=torch.device("cpu"),
        work_dir=work_dir,
        progress=progress,
        should_cancel=should_cancel,
    )


def summary(fit: FitResult) -> list[tuple[Any, ...]]:
    """Everything an epoch records except wall-clock figures."""
    return [(r.epoch, r.losses, r.val_auc, r.val_pfd, r.val_exit_auc, r.lr) for r in fit.history]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> CohortArrays:
    return write_cohort(tmp_path_factory.mktemp("cohort"), n=400)


@pytest.fixture(scope="module")
def reference(cohort: CohortArrays, tmp_path_factory: pytest.TempPathFactory) -> tuple[FitResult, dict]:
    trainer = make_trainer(cohort, CONFIG, tmp_path_factory.mktemp("reference"))
    return trainer.fit(), trainer.net.state_dict()


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_run(cohort: CohortArrays, reference: tuple[FitResult, dict], tmp_path: Path) -> None:
    fit, weights = reference
    trainer = make_trainer(cohort, CONFIG, tmp_path / "again")
    again = trainer.fit()
    assert summary(again) == summary(fit)
    assert same_weights(trainer.net.state_dict(), weights)
    assert fit.history[-1].val_auc > 0.75  # the planted signal is learnt

    other = make_trainer(cohort, CONFIG.model_copy(update={"seed": 1, "epochs": 1}), tmp_path / "other").fit()
    assert other.history[0].losses != fit.history[0].losses


def test_resume_after_a_crash_matches_an_uninterrupted_run(
    cohort: CohortArrays, reference: tuple[FitResult, dict], tmp_path: Path
) -> None:
    calls = iter(range(10_000))
    crash_at = 12  # epoch 1 asks 7 steps + 2 validation batches: this lands mid epoch 2

    def crash() -> bool:
        if next(calls) == crash_at:
            raise RuntimeError("worker killed")
        return False

    with pytest.raises(RuntimeError, match="worker killed"):
        make_trainer(cohort, CONFIG, tmp_path, should_cancel=crash).fit()
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert saved["state"]["epoch"] == 1

    trainer = make_trainer(cohort, CONFIG, tmp_path)  # a fresh process: new network, same work dir
    resumed = trainer.fit()
    fit, weights = reference
    assert summary(resumed) == summary(fit)
    assert resumed.best_epoch == fit.best_epoch
    assert same_weights(trainer.net.state_dict(), weights)


def test_a_checkpoint_of_another_config_is_not_resumed(cohort: CohortArrays, tmp_path: Path) -> None:
    make_trainer(cohort, CONFIG.model_copy(update={"epochs": 1}), tmp_path).fit()
    with pytest.raises(ConflictError):
        make_trainer(cohort, CONFIG.model_copy(update={"epochs": 1, "lr": 0.1}), tmp_path).fit()


def test_cancel_stops_between_steps(cohort: CohortArrays, tmp_path: Path) -> None:
    calls = iter(range(100))
    with pytest.raises(Cancelled):
        make_trainer(cohort, CONFIG, tmp_path, should_cancel=lambda: next(calls) >= 3).fit()
    assert not (tmp_path / "checkpoint.pt").exists()


def test_progress_reports_each_epoch(cohort: CohortArrays, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("app.training.trainer.REPORT_EVERY_S", 0.0)  # every step
    events: list[ProgressEvent] = []
    make_trainer(cohort, CONFIG.model_copy(update={"epochs": 2}), tmp_path, progress=events.append).fit()
    steps = [e for e in events if e.phase == "train"]
    epochs = [e for e in events if e.phase == "validate"]
    assert [e.step for e in steps] == list(range(1, len(steps) + 1))
    assert all(e.total_steps == len(steps) and set(e.losses) == {"bce", "hinge", "total"} for e in steps)
    assert all(e.images_per_s and e.images_per_s > 0 for e in steps)
    assert steps[-1].eta_s == pytest.approx(0.0)
    assert [e.epoch for e in epochs] == [1, 2]
    assert all(e.val_auc is not None and 0 <= e.val_auc <= 1 and e.val_pfd is not None for e in epochs)


def test_a_resumed_run_re_reports_its_last_checkpointed_epoch(cohort: CohortArrays, tmp_path: Path) -> None:
    """Killed after the epoch-1 checkpoint but before its report: the next attempt reports epoch 1 first."""

    def killed_while_reporting(event: ProgressEvent) -> None:
        if event.phase == "validate":
            raise RuntimeError("worker killed")

    config = CONFIG.model_copy(update={"epochs": 2})
    with pytest.raises(RuntimeError, match="worker killed"):
        make_trainer(cohort, config, tmp_path, progress=killed_while_reporting).fit()
    events: list[ProgressEvent] = []
    fit = make_trainer(cohort, config, tmp_path, progress=events.append).fit()
    reported = [e for e in events if e.phase == "validate"]
    assert [e.epoch for e in reported] == [1, 2]
    assert [e.val_auc for e in reported] == [r.val_auc for r in fit.history]
