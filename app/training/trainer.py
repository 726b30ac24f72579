"""The training loop: device and precision, epochs, validation, checkpoints, resume, cancel.

Model selection (stated with every model): the epoch with the highest validation AUC of the final exit
(ties keep the earlier epoch); early stopping after ``patience`` epochs without a strictly better one.
For a multiclass task the AUC is the macro one-vs-rest AUC, for a multilabel task the mean per-finding
AUC (``app.training.task_metrics``): threshold-free like the binary AUC, so the weights are chosen
before any decision threshold. The final exit is the one every method serves or falls back to, so the
criterion is comparable across methods; multi-exit thresholds are chosen afterwards on the selected
weights.

Reproducibility: weights are initialised from ``config.seed`` by the caller; batch order comes from a
generator seeded by (seed, epoch) and augmentation from one seeded by (seed, epoch, step), so a run
resumed from an epoch checkpoint replays exactly what an uninterrupted run does. On CPU the same
config and seed give identical metrics; CUDA kernels may not be bitwise deterministic.
"""

from __future__ import annotations

import math
import os
import random
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.cohorts.cache import CohortArrays
from app.core.errors import ConflictError
from app.training.augment import augment, step_generator
from app.training.config import TrainingConfig
from app.training.data import BatchReader, Normalizer, sequential_batches, stratified_batches
from app.training.groups import GroupEncoding
from app.training.losses import Objective
from app.training.networks import MultiExitNet, probabilities
from app.training.progress import CancelCheck, Cancelled, ProgressCallback, ProgressEvent
from app.training.strata import prioritised_labels, stratum_labels
from app.training.task_metrics import score_exit

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
REPORT_EVERY_S = 1.0


def select_device(preference: str = "auto") -> torch.device:
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


@dataclass
class EpochRecord:
    epoch: int
    losses: dict[str, float]
    val_auc: float  # final exit (multiclass: macro one-vs-rest; multilabel: mean per finding)
    val_pfd: float  # final exit, training groups; NaN when fewer than two groups have positives
    val_exit_auc: list[float]  # every exit
    lr: float
    seconds: float
    images_per_s: float
    val_accuracy: float | None = None  # multiclass, final exit, argmax
    val_macro_f1: float | None = None
    val_eopp1: float | None = None


@dataclass
class FitResult:
    history: list[EpochRecord]
    best_epoch: int
    best_val_auc: float
    stopped_early: bool


@dataclass
class _State:
    epoch: int = 0  # epochs completed
    step: int = 0
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = -math.inf
    bad_epochs: int = 0
    finished: bool = False
    stopped_early: bool = False


def _build_optimizer(params: Any, cfg: TrainingConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0, weight_decay=cfg.weight_decay
        )
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _build_scheduler(opt: torch.optim.Optimizer, cfg: TrainingConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch."""
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    if cfg.lr_schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_step_epochs, gamma=cfg.lr_gamma)
    return torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)


class _Eta:
    """Seconds left, from the pace of this process so far (validation time included)."""

    def __init__(self, total_steps: int, first_step: int) -> None:
        self.total_steps, self.first_step, self.started = total_steps, first_step, time.monotonic()

    def __call__(self, step: int) -> float | None:
        if step == self.first_step:
            return None
        return (time.monotonic() - self.started) / (step - self.first_step) * (self.total_steps - step)


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Trainer:
    """Trains ``net`` on a cohort's train split, validating every epoch; owns ``work_dir``."""

    def __init__(
        self,
        net: MultiExitNet,
        config: TrainingConfig,
        cohort: CohortArrays,
        groups: GroupEncoding,
        *,
        device: torch.device,
        work_dir: Path,
        progress: ProgressCallback,
        should_cancel: CancelCheck,
        teacher: MultiExitNet | None = None,
    ) -> None:
        """``teacher``: the network an ``mfd`` term distils from (same architecture), run in eval mode
        under no_grad on every training batch."""
        self.config, self.cohort, self.groups = config, cohort, groups
        self.device, self.work_dir = device, work_dir
        self.progress, self.should_cancel = progress, should_cancel
        # channels-last: the cache's NHWC rows arrive in it, and CPU/GPU convolutions run faster in it
        net.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.net = net
        self.teacher = teacher
        if teacher is not None:
            teacher.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
            teacher.eval().requires_grad_(False)
        self.objective = Objective(
            config.resolved_exit_weights(),
            terms=config.terms,
            rank_only=config.rank_only,
            n_groups=groups.n_groups,
            kind=cohort.task.kind,
        )
        self.optimizer = _build_optimizer(self.net.parameters(), config)
        self.scheduler = _build_scheduler(self.optimizer, config)
        cuda = device.type == "cuda" and config.amp
        self.amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.normalizer = Normalizer(cohort.channels, device)
        self.reader = BatchReader(cohort.images, cohort.labels, groups.codes, device, config.num_workers)
        self.strata = stratum_labels(cohort.labels, cohort.task)
        self.train_index = cohort.indices("train")
        self.val_index = cohort.indices("val")
        self.steps_per_epoch = max(1, len(self.train_index) // config.batch_size)

    # -- inference ---------------------------------------------------------------------------------

    def predict(self, index: np.ndarray, *, amp: bool = True) -> np.ndarray:
        """Probabilities of every exit in ``index`` order: ``(len(index), n_exits)`` for a binary task,
        ``(len(index), n_exits, width)`` otherwise (softmax or per-finding sigmoid).

        ``amp=False`` forces float32 (numbers that must match the exported ONNX graphs).
        """
        self.net.eval()
        order = np.argsort(index, kind="stable")
        task = self.cohort.task
        shape = (len(index), self.net.n_exits) + (() if task.kind == "binary" else (task.width,))
        out = np.empty(shape, dtype=np.float64)
        start = 0
        with torch.inference_mode(), self._autocast(amp), self._exact_float32(not amp):
            for batch in self.reader.iterate(sequential_batches(index[order], self.config.batch_size * 2)):
                if self.should_cancel():
                    raise Cancelled
                probs = probabilities(self.net(self.normalizer(batch.images)), task)
                out[order[start : start + len(batch.index)]] = probs.cpu().numpy()
                start += len(batch.index)
        return out

    def _exact_float32(self, enabled: bool) -> AbstractContextManager[Any]:
        """cuDNN convolutions default to TF32 on recent GPUs; numbers frozen with a model must not."""
        if not enabled or self.device.type != "cuda":
            return nullcontext()
        cudnn = torch.backends.cudnn
        return cudnn.flags(
            enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic, allow_tf32=False
        )

    def _autocast(self, enabled: bool = True) -> torch.autocast:
        dtype = self.amp_dtype or torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype, enabled=enabled and self.amp_dtype is not None)

    # -- checkpoints ---------------------------------------------------------------------------------

    def _save(self, state: _State) -> None:
        rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        _atomic_save(
            {
                "config": self.config.model_dump(mode="json"),
                "model": self.net.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "state": {**asdict(state), "history": [asdict(r) for r in state.history]},
                "rng": rng,
            },
            self.work_dir / CHECKPOINT,
        )

    def _resume(self) -> _State:
        path = self.work_dir / CHECKPOINT
        if not path.exists():
            return _State()
        ckpt = torch.load(path, map_location=self.device, weights_only=False)
        if ckpt["config"] != self.config.model_dump(mode="json"):
            raise ConflictError(f"{path} belongs to a different training config; use a fresh work dir")
        self.net.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        rng = ckpt["rng"]
        torch.set_rng_state(rng["torch"].cpu())
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
        saved = ckpt["state"]
        history = [EpochRecord(**r) for r in saved.pop("history")]
        return _State(**saved, history=history)

    # -- training ------------------------------------------------------------------------------------

    def fit(self) -> FitResult:
        cfg = self.config
        self.work_dir.mkdir(parents=True, exist_ok=True)
        state = self._resume()
        eta = _Eta(cfg.epochs * self.steps_per_epoch, state.step)
        if state.history:
            # a crash between saving the checkpoint and reporting its epoch would lose that epoch
            # from whoever records the reports; they key epochs, so a report that did land is replaced
            self.progress(self._epoch_event(state.history[-1], state, eta))
        while not state.finished:
            epoch = state.epoch + 1
            losses, seconds = self._train_epoch(epoch, state, eta)
            probs = self.predict(self.val_index)
            y, codes = self.cohort.labels[self.val_index], self.groups.codes[self.val_index]
            exits = [
                score_exit(self.cohort.task, y, probs[:, e], codes, self.groups.n_groups) for e in range(probs.shape[1])
            ]
            final = exits[-1]
            record = EpochRecord(
                epoch=epoch,
                losses=losses,
                val_auc=final.auc,
                val_pfd=final.pfd,
                val_exit_auc=[e.auc for e in exits],
                lr=self.optimizer.param_groups[0]["lr"],
                seconds=seconds,
                images_per_s=self.steps_per_epoch * cfg.batch_size / max(seconds, 1e-9),
                val_accuracy=final.accuracy,
                val_macro_f1=final.macro_f1,
                val_eopp1=final.eopp1,
            )
            self.scheduler.step()
            state.history.append(record)
            state.epoch = epoch
            if record.val_auc > state.best_score:
                state.best_epoch, state.best_score, state.bad_epochs = epoch, record.val_auc, 0
                _atomic_save({"epoch": epoch, "model": self.net.state_dict()}, self.work_dir / BEST)
            else:
                state.bad_epochs += 1
            state.stopped_early = cfg.patience is not None and state.bad_epochs >= cfg.patience
            state.finished = epoch >= cfg.epochs or state.stopped_early
            self._save(state)
            self.progress(self._epoch_event(record, state, eta))
        best = torch.load(self.work_dir / BEST, map_location=self.device, weights_only=True)
        self.net.load_state_dict(best["model"])
        return FitResult(state.history, state.best_epoch, state.best_score, state.stopped_early)

    def _epoch_event(self, record: EpochRecord, state: _State, eta: _Eta) -> ProgressEvent:
        return ProgressEvent(
            phase="validate",
            epoch=record.epoch,
            epochs=self.config.epochs,
            step=state.step,
            total_steps=eta.total_steps,
            losses=record.losses,
            images_per_s=record.images_per_s,
            eta_s=eta(state.step),
            val_auc=record.val_auc,
            val_pfd=record.val_pfd,
            val_accuracy=record.val_accuracy,
            val_macro_f1=record.val_macro_f1,
            val_eopp1=record.val_eopp1,
            message="early stop" if state.stopped_early else "",
        )

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """Logits, and each exit's features only when a term reads them (no cost otherwise)."""
        if self.objective.needs_features:
            return self.net.forward_with_features(x)
        return self.net(x), None

    def _teacher_features(self, x: torch.Tensor) -> list[torch.Tensor] | None:
        """The teacher's features at each exit on the same batch (same forward schedule, no second pass
        over the data)."""
        if self.teacher is None:
            return None
        with torch.no_grad():
            return self.teacher.forward_with_features(x)[1]

    def _train_epoch(self, epoch: int, state: _State, eta: _Eta) -> tuple[dict[str, float], float]:
        cfg = self.config
        clip = cfg.resolved_grad_clip_norm()
        self.net.train()
        rng = np.random.default_rng([cfg.seed, epoch])
        batches = stratified_batches(
            self.train_index,
            self.strata,
            self.groups.codes,
            cfg.batch_size,
            rng,
            prioritised=prioritised_labels(self.cohort.task),
            class_balanced=cfg.class_balanced,
        )
        sums: dict[str, torch.Tensor] = {}
        epoch_start = last_report = time.monotonic()
        for i, batch in enumerate(self.reader.iterate(batches)):
            if self.should_cancel():
                raise Cancelled
            x = self.normalizer.to_unit(batch.images)
            if cfg.augment.enabled:
                x = augment(x, cfg.augment, step_generator(cfg.seed, epoch, i))
            x = self.normalizer.normalize(x)
            with self._autocast():
                logits, features = self._forward(x)
                teacher_features = self._teacher_features(x)
            loss, terms = self.objective(logits, batch.labels, batch.groups, features, teacher_features)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if clip is not None:  # on the true gradients: unscale first when AMP scales them
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            state.step += 1
            for k, v in terms.items():
                sums[k] = sums[k] + v if k in sums else v
            now = time.monotonic()
            if now - last_report >= REPORT_EVERY_S:
                last_report = now
                self.progress(
                    ProgressEvent(
                        phase="train",
                        epoch=epoch,
                        epochs=cfg.epochs,
                        step=state.step,
                        total_steps=eta.total_steps,
                        losses={k: float(v) / (i + 1) for k, v in sums.items()},
                        images_per_s=(i + 1) * cfg.batch_size / (now - epoch_start),
                        eta_s=eta(state.step),
                    )
                )
        seconds = time.monotonic() - epoch_start
        return {k: float(v) / len(batches) for k, v in sums.items()}, seconds
