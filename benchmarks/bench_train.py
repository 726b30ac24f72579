"""Training throughput: the trainer against a plain hand-written PyTorch loop, and the methods' costs.

Reference, measured in the same run: a plain loop over the *same* single-exit network with the data
already normalised in memory as a float tensor (the cheapest possible input path), Adam, the same
batch size. The trainer reads uint8 rows from the cohort's memory map, samples stratified batches,
normalises on the fly and reports progress. A second reference runs the plain loop in channels-last
memory (what the trainer uses). Each variant runs once per round, rounds interleaved; ratios use each
variant's best round (like ``timeit``: on a shared machine the fastest round is the least disturbed)
and, by default, images per second of the process's own CPU time, which other processes' load
disturbs far less than wall-clock time (use ``--threads 1`` there: idle OpenMP threads spin).

Targets: trainer ``erm`` ≥ 0.9× the plain loop; ``pairwise_eo`` ≥ 0.85× ``erm`` (images/s);
``fair_multi_exit`` epoch cost ≤ 1.3× ``erm``'s. ``--terms hsic mfd`` adds single-exit runs with those
fairness terms (``mfd`` with a teacher network of the same architecture, its forward on every batch
included): epoch cost ≤ 1.3× ``erm``'s for ``hsic``, ≤ 1.6× for ``mfd``. ``--ic-heads paper pooled`` times
``fair_multi_exit`` with each internal-classifier head (``ic_head``, docs/methods.md: the paper's, and the
cheap head that pools before its first conv), each against the same run's ``erm``, and prints each
network's multiply-adds against ``erm``'s (counted, not timed) beside the measured epoch cost.

    .venv/bin/python benchmarks/bench_train.py --backbone resnet18 --image-size 64 --n 1024 --rounds 3
    .venv/bin/python benchmarks/bench_train.py --backbone small --terms hsic mfd
    .venv/bin/python benchmarks/bench_train.py --backbone small --image-size 32 --ic-heads paper pooled
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from app.cohorts.cache import CohortArrays, load_cohort_arrays, write_items
from app.cohorts.image_store import create_image_store
from app.training.config import Augmentation, TrainingConfig
from app.training.data import Normalizer
from app.training.groups import encode_groups
from app.training.networks import build_network, exit_costs
from app.training.trainer import Trainer

METHODS = ("erm", "pairwise_eo", "fair_multi_exit")
IC_HEADS = ("paper", "pooled")
#: Epoch-cost targets of the fairness terms relative to erm (single exit, same backbone).
TERM_TARGETS = {"hsic": 1.3, "mfd": 1.6}


def make_cache(folder: Path, n_train: int, size: int, channels: int, batch_size: int) -> CohortArrays:
    """Random images (throughput only): the training split plus a small validation and test split."""
    rng = np.random.default_rng(0)
    n_val = n_test = batch_size
    n = n_train + n_val + n_test
    images = create_image_store(folder, n, size, channels)
    images[:] = rng.integers(0, 256, size=images.shape, dtype=np.uint8)
    images.flush()
    labels = (rng.random(n) < 0.3).astype(int)
    labels[n_train : n_train + 2] = labels[-2:] = [0, 1]
    write_items(
        folder,
        size=size,
        channels=channels,
        item_ids=[str(i) for i in range(n)],
        labels=labels.tolist(),
        split=["train"] * n_train + ["val"] * n_val + ["test"] * n_test,
        patient_ids=[None] * n,
        attributes={"sex": rng.choice(["F", "M"], n).tolist()},
    )
    return load_cohort_arrays(folder)


class Speed(NamedTuple):
    wall: float  # images per second of wall-clock time
    cpu: float  # images per second of this process's CPU time (robust to other load on a shared machine)


def plain_loop(cohort: CohortArrays, backbone: str, batch_size: int, channels_last: bool) -> Speed:
    """One epoch of the simplest loop: preloaded float tensors, shuffled slices, BCE, Adam."""
    torch.manual_seed(0)
    net = build_network(backbone, in_channels=cohort.channels, image_size=cohort.image_size, multi_exit=False)
    index = cohort.indices("train")
    x = Normalizer(cohort.channels, torch.device("cpu"))(torch.from_numpy(cohort.images[index]).permute(0, 3, 1, 2))
    layout = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    y = torch.from_numpy(cohort.labels[index].astype(np.float32))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    order = torch.randperm(len(index))
    steps = len(index) // batch_size
    start, cpu_start = time.perf_counter(), time.process_time()
    for i in range(steps):
        b = order[i * batch_size : (i + 1) * batch_size]
        loss = F.binary_cross_entropy_with_logits(net(x[b].contiguous(memory_format=layout))[:, 0], y[b])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    images = steps * batch_size
    return Speed(images / (time.perf_counter() - start), images / (time.process_time() - cpu_start))


def multi_exit_run(head: str) -> str:
    """The row name of ``fair_multi_exit`` with IC head ``head`` (the paper's keeps the plain name)."""
    return "fair_multi_exit" if head == "paper" else f"fair_multi_exit ({head} head)"


def run_fields(name: str) -> dict[str, object]:
    """A benchmark row's config: a method alias, one with another IC head, or a term added to a single-exit run."""
    if name in METHODS:
        return {"method": name}
    head = next((h for h in IC_HEADS if name == multi_exit_run(h)), None)
    if head is not None:
        return {"method": "fair_multi_exit", "ic_head": head}
    term: dict[str, object] = {"name": name}
    if name == "mfd":
        term["teacher_model_version_id"] = "mdl_bench_teacher"  # the network itself is built below
    return {"multi_exit": False, "terms": [term]}


def trainer_epoch(cohort: CohortArrays, backbone: str, batch_size: int, run: str) -> Speed:
    """One training epoch through ``Trainer``. Wall: the trainer's own figure (validation excluded);
    CPU: the whole ``fit`` including validation and checkpoint writes, so it errs against the trainer."""
    config = TrainingConfig.model_validate(
        {
            **run_fields(run),
            "sensitive_attributes": ["sex"],
            "backbone": backbone,
            "image_size": cohort.image_size,
            "epochs": 1,
            "batch_size": batch_size,
            "augment": Augmentation.off(),
            "patience": None,
            "device": "cpu",
        }
    )
    torch.manual_seed(0)
    net = build_network(
        backbone,
        in_channels=cohort.channels,
        image_size=cohort.image_size,
        multi_exit=config.multi_exit,
        ic_head=config.ic_head,
    )
    teacher = copy.deepcopy(net) if config.teacher_model_version_id else None
    groups = encode_groups(cohort.attributes, config.sensitive_attributes)
    with tempfile.TemporaryDirectory() as work:
        trainer = Trainer(
            net,
            config,
            cohort,
            groups,
            device=torch.device("cpu"),
            work_dir=Path(work),
            progress=lambda e: None,
            should_cancel=lambda: False,
            teacher=teacher,
        )
        cpu_start = time.process_time()
        record = trainer.fit().history[0]
        images = trainer.steps_per_epoch * batch_size
        return Speed(record.images_per_s, images / (time.process_time() - cpu_start))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet18", choices=["resnet18", "vgg11", "small"])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=3, choices=[1, 3])
    parser.add_argument("--n", type=int, default=1024, help="training images per epoch")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu", help="which figures the ratios use")
    parser.add_argument("--terms", nargs="*", default=[], choices=sorted(TERM_TARGETS), help="fairness terms to time")
    parser.add_argument(
        "--ic-heads",
        nargs="+",
        default=["paper"],
        choices=IC_HEADS,
        help="time fair_multi_exit with each of these IC heads (paper: the paper's; pooled: pools first)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    timed = ["erm", "pairwise_eo", *(multi_exit_run(h) for h in dict.fromkeys(args.ic_heads)), *args.terms]
    runs: dict[str, list[Speed]] = {k: [] for k in ("plain", "plain_cl", *timed)}
    with tempfile.TemporaryDirectory() as tmp:
        cohort = make_cache(Path(tmp), args.n, args.image_size, args.channels, args.batch_size)
        trainer_epoch(cohort, args.backbone, args.batch_size, "erm")  # warm-up (allocator, kernels)
        for r in range(args.rounds):
            runs["plain"].append(plain_loop(cohort, args.backbone, args.batch_size, channels_last=False))
            runs["plain_cl"].append(plain_loop(cohort, args.backbone, args.batch_size, channels_last=True))
            for run in timed:
                runs[run].append(trainer_epoch(cohort, args.backbone, args.batch_size, run))
            print(
                f"round {r + 1}: " + ", ".join(f"{k} {v[-1].wall:.0f}/{v[-1].cpu:.0f}" for k, v in runs.items()),
                flush=True,
            )

    best_wall = {k: max(s.wall for s in v) for k, v in runs.items()}
    best_cpu = {k: max(s.cpu for s in v) for k, v in runs.items()}
    med_wall = {k: statistics.median(s.wall for s in v) for k, v in runs.items()}
    best = best_cpu if args.clock == "cpu" else best_wall
    print(
        f"\n{args.backbone}, {args.image_size}px x{args.channels}, batch {args.batch_size}, {args.n} images/epoch, "
        f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}; {args.rounds} rounds\n"
    )
    print("| loop | images/s (wall), best round | median | images per CPU-second, best round |")
    print("|---|---|---|---|")
    names = {"plain": "plain loop (reference)", "plain_cl": "plain loop, channels-last"}
    names |= {term: f"trainer erm + {term}" for term in args.terms}
    for key in runs:
        print(
            f"| {names.get(key, 'trainer ' + key)} | {best_wall[key]:.0f} | {med_wall[key]:.0f} | {best_cpu[key]:.0f} |"
        )
    erm_vs_plain, erm_vs_plain_cl = best["erm"] / best["plain"], best["erm"] / best["plain_cl"]
    pairwise = best["pairwise_eo"] / best["erm"]
    checks = [
        ("trainer erm / plain loop (images/s)", erm_vs_plain, ">= 0.90", erm_vs_plain >= 0.9),
        ("trainer erm / plain loop channels-last", erm_vs_plain_cl, "(info)", True),
        ("pairwise_eo / erm (images/s)", pairwise, ">= 0.85", pairwise >= 0.85),
    ]
    erm_macs = multiply_adds(args, multi_exit=False, ic_head="paper")
    for head in dict.fromkeys(args.ic_heads):
        run = multi_exit_run(head)
        cost = best["erm"] / best[run]
        checks.append((f"{run} / erm (epoch cost)", cost, "<= 1.30", cost <= 1.3))
        macs = multiply_adds(args, multi_exit=True, ic_head=head) / erm_macs
        checks.append((f"{run} / erm (forward multiply-adds, counted)", macs, "(info)", True))
    for term in args.terms:
        cost, target = best["erm"] / best[term], TERM_TARGETS[term]
        checks.append((f"erm + {term} / erm (epoch cost)", cost, f"<= {target:.2f}", cost <= target))
    print(f"\n| ratio ({args.clock} clock) | value | target | |\n|---|---|---|---|")
    for name, value, goal, ok in checks:
        print(f"| {name} | {value:.2f} | {goal} | {'ok' if ok else 'MISSED'} |")


def multiply_adds(args: argparse.Namespace, *, multi_exit: bool, ic_head: str) -> int:
    """Conv + linear multiply-adds per sample of the whole network (every exit), from ``exit_costs``."""
    net = build_network(
        args.backbone,
        in_channels=args.channels,
        image_size=args.image_size,
        multi_exit=multi_exit,
        ic_head=ic_head,  # type: ignore[arg-type]
    )
    return exit_costs(net).exit_macs[-1]


if __name__ == "__main__":
    main()
