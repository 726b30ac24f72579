"""The four training methods side by side: accuracy, fairness and compute, mean ± SD over seeds.

Each cohort cache (an ingested cohort's cache folder, e.g. from ``fairaudit synth derm|cxr`` uploaded
and ingested) is trained with every method and seed through ``run_training``; the test-split
predictions go through the metrics engine (``app.fairness.engine.build_report``, point estimates).
The reference is ``erm`` in the same run. Reported for the served output (the early-exit policy for
multi-exit methods): AUC, PF per group, PFD, EOpp1 (TPR gap at the frozen operating threshold),
worst-group AUC — over the groups of the training attribute, or of their intersection when several
are given — and the mean compute per sample (fraction of the full network's multiply-adds).

    .venv/bin/python benchmarks/bench_methods.py --cache var/cache/derm:skin_tone \\
        --cache var/cache/cxr:sex,age_group --seeds 3 --epochs 10 --backbone small
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.cohorts.cache import load_cohort_arrays
from app.fairness.engine import build_report
from app.training.config import METHODS, Augmentation
from app.training.run import run_training

GAPS = ("pfd", "eopp1", "worst_group_auc")


def parse_cache(value: str) -> tuple[Path, list[str] | None]:
    """``DIR`` or ``DIR:attr[,attr]``."""
    path, _, attrs = value.partition(":")
    return Path(path), attrs.split(",") if attrs else None


def evaluate(result: Any, attributes: list[str], min_count: int) -> dict[str, Any]:
    ps = result.test_predictions
    report = build_report(ps, attributes=attributes, intersections=len(attributes) > 1, n_boot=0, min_count=min_count)
    policy = report["evaluations"][-1]["groupings"]
    overall = next(g for g in policy if g["kind"] == "overall")
    kind = "intersection" if len(attributes) > 1 else "attribute"
    grouping = next(g for g in policy if g["kind"] == kind)
    compute = 1.0 if ps.exit_index is None else float(np.asarray(ps.exit_cost)[ps.exit_index].mean())
    return {
        "auc": overall["groups"][0]["metrics"]["auc"]["value"],
        "pf": {g["group"]: g["metrics"]["pf"]["value"] for g in grouping["groups"]},
        **{gap: grouping["gaps"][gap]["value"] for gap in GAPS},
        "mean_compute": compute,
    }


def mean_sd(values: list[float | None]) -> str:
    xs = [v for v in values if v is not None]
    if not xs:
        return "–"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.fmean(xs):.3f} ± {sd:.3f}" + ("" if len(xs) == len(values) else f" (n={len(xs)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", action="append", required=True, type=parse_cache, metavar="DIR[:ATTRS]")
    parser.add_argument("--attributes", help="comma-separated, for caches given without ':ATTRS'")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--backbone", default="small", choices=["resnet18", "vgg11", "small"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--fairness-weight", type=float, default=1.0)
    parser.add_argument("--augment", action="store_true", help="default augmentations (off by default)")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    parser.add_argument(
        "--min-count", type=int, default=10, help="the engine's minimum n_pos / n_neg for a group's metric"
    )
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rows: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        for cache, attrs in args.cache:
            attributes = attrs or (args.attributes.split(",") if args.attributes else None)
            if not attributes:
                parser.error(f"no attributes for {cache}: use {cache}:ATTR or --attributes")
            cohort = load_cohort_arrays(cache)
            for method in args.methods.split(","):
                for seed in range(args.seeds):
                    config = {
                        "method": method,
                        "sensitive_attributes": attributes,
                        "backbone": args.backbone,
                        "epochs": args.epochs,
                        "batch_size": args.batch_size,
                        "lr": args.lr,
                        "seed": seed,
                        "fairness_weight": args.fairness_weight,
                        "augment": {} if args.augment else Augmentation.off().model_dump(),
                        "patience": None,
                    }
                    run = f"{cache.name}-{method}-{seed}"
                    started = time.monotonic()
                    result = run_training(cohort, config, Path(tmp) / run, Path(tmp) / "models", run)
                    figures = {**evaluate(result, attributes, args.min_count), "seconds": time.monotonic() - started}
                    rows[(cache.name, method)].append(figures)
                    print(
                        f"{run}: auc {figures['auc']:.3f} pfd {figures['pfd'] or float('nan'):.3f} "
                        f"compute {figures['mean_compute']:.2f} ({figures['seconds']:.0f}s)",
                        flush=True,
                    )

    print(
        f"\n{args.backbone}, {args.epochs} epochs, batch {args.batch_size}, lr {args.lr}, "
        f"seeds 0..{args.seeds - 1}; test split, served output; mean ± SD\n"
    )
    print("| cohort | method | AUC | PFD | EOpp1 | worst-group AUC | compute |")
    print("|---|---|---|---|---|---|---|")
    for (cohort_name, method), runs in rows.items():
        cells = [mean_sd([r[k] for r in runs]) for k in ("auc", "pfd", "eopp1", "worst_group_auc", "mean_compute")]
        print(f"| {cohort_name} | {method} | " + " | ".join(cells) + " |")
    print("\n| cohort | method | group | PF |\n|---|---|---|---|")
    for (cohort_name, method), runs in rows.items():
        for group in sorted({g for r in runs for g in r["pf"]}):
            print(f"| {cohort_name} | {method} | {group} | {mean_sd([r['pf'].get(group) for r in runs])} |")
    if args.json:
        args.json.write_text(json.dumps({f"{c}/{m}": r for (c, m), r in rows.items()}, indent=2))


if __name__ == "__main__":
    main()
