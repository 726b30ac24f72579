"""Benchmark: FairAudit's metrics engine vs Fairlearn's MetricFrame, in the same run.

Data: ``--n`` predictions (default 100,000) with sex (2), age_group (4) and skin_type (6) and their
intersection (48 cells). Two things are timed:

1. FairAudit's whole report (``build_report``): every per-group metric of docs/metrics.md for every
   grouping, gaps, tests, curves, the Fairlearn block, and a ``--boot``-resample (default 1,000)
   bootstrap stratified by cell × label.
2. Fairlearn 0.15 ``MetricFrame`` on the metrics both define (count, selection rate, TPR, FPR, TNR,
   AUC on scores, Brier) for the same four groupings, plus its 12 named difference/ratio functions
   (demographic parity, equalized odds, equal opportunity), and its own (unstratified) bootstrap
   (``n_boot=``). One MetricFrame resample takes about as long as the point estimate, so 1,000 would
   take hours: it runs ``--fairlearn-boot`` resamples (default 5) and the time for ``--boot`` is
   projected linearly from them (stated in the output).

With ``--classes K`` (K >= 2) the model is a K-class one (softmax; skin type VI gets less signal for
its true class) and the multi-class report is timed instead: per group accuracy, balanced accuracy,
macro P/R/F1 and confusion matrices, per class x group one-vs-rest TPR/FPR/TNR/PPV/F1/AUC/PF, the
class-averaged gaps, per-class gaps, a Fairlearn block per class, bootstrap stratified by cell x
class. Fairlearn's side: per class, MetricFrames of selection rate, TPR, FPR and AUC (one-vs-rest)
for the same four groupings, timed and (for its bootstrap) projected as above.

Usage: ``python benchmarks/bench_metrics.py [--n 100000] [--boot 1000] [--fairlearn-boot 5] [--classes 9]``.
Timings are wall-clock on whatever else the machine is doing; CPU time is printed beside them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.fairness.engine import MulticlassPredictionSet, PredictionSet, build_report

ATTRIBUTES = ["sex", "age_group", "skin_type"]


def simulate(n: int, seed: int, n_exits: int) -> PredictionSet:
    rng = np.random.default_rng(seed)
    groups = {
        "sex": rng.choice(["F", "M"], n).astype(object),
        "age_group": rng.choice(["<40", "40-59", "60-74", ">=75"], n).astype(object),
        "skin_type": rng.choice(["I", "II", "III", "IV", "V", "VI"], n).astype(object),
    }
    y = (rng.random(n) < 0.3).astype(np.int64)
    separation = 1.2 - 0.4 * (groups["skin_type"] == "VI")
    scores = np.stack(
        [1 / (1 + np.exp(-(rng.normal(0, 1, n) + (0.7 + 0.3 * e) * separation * y - 1))) for e in range(n_exits)],
        axis=1,
    )
    exit_index = exit_cost = None
    if n_exits > 1:
        confident = np.maximum(scores, 1 - scores) >= 0.85
        confident[:, -1] = True
        exit_index = confident.argmax(axis=1)
        exit_cost = np.linspace(1 / n_exits, 1, n_exits)
    return PredictionSet(
        y_true=y,
        exit_scores=scores,
        groups=groups,
        threshold=0.5,
        exit_index=exit_index,
        exit_cost=exit_cost,
    )


def simulate_classes(n: int, seed: int, k: int) -> MulticlassPredictionSet:
    rng = np.random.default_rng(seed)
    groups = {
        "sex": rng.choice(["F", "M"], n).astype(object),
        "age_group": rng.choice(["<40", "40-59", "60-74", ">=75"], n).astype(object),
        "skin_type": rng.choice(["I", "II", "III", "IV", "V", "VI"], n).astype(object),
    }
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y] += 1.5 - 0.6 * (groups["skin_type"] == "VI")
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return MulticlassPredictionSet(
        y_true=y, exit_probs=probs[:, None, :], classes=tuple(f"c{c}" for c in range(k)), groups=groups
    )


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def fairlearn_run(p: PredictionSet, n_boot: int) -> dict[str, Any]:
    """Time MetricFrames for the four groupings, the 12 difference functions, and MetricFrames with
    their own bootstrap of ``n_boot`` resamples."""
    import pandas as pd
    from fairlearn.metrics import (
        MetricFrame,
        count,
        demographic_parity_difference,
        equal_opportunity_difference,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_negative_rate,
        true_positive_rate,
    )
    from sklearn.metrics import brier_score_loss, roc_auc_score

    t = p.threshold

    def on_pred(fn: Callable) -> Callable:
        return lambda y, s: fn(y, s >= t)

    metrics = {
        "count": count,
        "selection_rate": on_pred(selection_rate),
        "tpr": on_pred(true_positive_rate),
        "fpr": on_pred(false_positive_rate),
        "tnr": on_pred(true_negative_rate),
        "auc": roc_auc_score,
        "brier": brier_score_loss,
    }
    y, s = p.y_true, p.exit_scores[:, -1]
    features: dict[str, Any] = {a: pd.Series(p.groups[a], name=a) for a in ATTRIBUTES}
    features["×".join(ATTRIBUTES)] = pd.DataFrame({a: p.groups[a] for a in ATTRIBUTES})

    def frames(**kwargs: Any) -> dict[str, Any]:
        return {
            name: MetricFrame(metrics=metrics, y_true=y, y_pred=s, sensitive_features=sf, **kwargs)
            for name, sf in features.items()
        }

    def differences() -> None:
        for sf in features.values():
            for fn in (demographic_parity_difference, equalized_odds_difference, equal_opportunity_difference):
                fn(y, s >= t, sensitive_features=sf)

    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["frames"], out["point_wall"], out["point_cpu"] = timed(frames)
        _, out["diff_wall"], out["diff_cpu"] = timed(differences)
        boot = {"n_boot": n_boot, "ci_quantiles": [0.025, 0.975], "random_state": 0}
        _, out["boot_wall"], out["boot_cpu"] = timed(lambda: frames(**boot))
    return out


def agreement(report: dict, frames: dict) -> float:
    """Largest |FairAudit − Fairlearn| over the per-group rates and AUC both computed."""
    worst = 0.0
    evaluation = next(e for e in report["evaluations"] if e["exit"] == "policy")
    for grouping in evaluation["groupings"][1:]:
        frame = frames[grouping["attribute"]].by_group
        ours = {g["group"]: g for g in grouping["groups"]}
        for key, row in frame.iterrows():
            keys = key if isinstance(key, tuple) else (key,)
            label = keys[0] if len(keys) == 1 else ", ".join(f"{a}={v}" for a, v in zip(ATTRIBUTES, keys, strict=True))
            fl = grouping["fairlearn"]["by_group"][label]
            for metric in ("selection_rate", "tpr", "fpr", "tnr"):
                worst = max(worst, abs(fl[metric] - row[metric]))
            worst = max(worst, abs(ours[label]["metrics"]["auc"]["value"] - row["auc"]))
            worst = max(worst, abs(ours[label]["metrics"]["brier"]["value"] - row["brier"]))
    return worst


def fairlearn_classes(p: MulticlassPredictionSet, n_boot: int) -> dict[str, Any]:
    """Per class, MetricFrames of selection rate, TPR, FPR and AUC (one-vs-rest) for the four
    groupings; then the same with Fairlearn's own bootstrap of ``n_boot`` resamples."""
    import pandas as pd
    from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
    from sklearn.metrics import roc_auc_score

    metrics = {
        "selection_rate": selection_rate,
        "tpr": true_positive_rate,
        "fpr": false_positive_rate,
        "auc": lambda y, _pred, score: roc_auc_score(y, score),
    }
    probs = p.exit_probs[:, -1, :]
    pred = probs.argmax(axis=1)
    features: dict[str, Any] = {a: pd.Series(p.groups[a], name=a) for a in ATTRIBUTES}
    features["×".join(ATTRIBUTES)] = pd.DataFrame({a: p.groups[a] for a in ATTRIBUTES})

    def frames(**kwargs: Any) -> dict[tuple[str, str], Any]:
        out = {}
        for c, name in enumerate(p.classes):
            y, decided = (p.y_true == c).astype(int), (pred == c).astype(int)
            for attribute, sf in features.items():
                out[(name, attribute)] = MetricFrame(
                    metrics=metrics,
                    y_true=y,
                    y_pred=decided,
                    sensitive_features=sf,
                    sample_params={"auc": {"score": probs[:, c]}},
                    **kwargs,
                )
        return out

    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["frames"], out["point_wall"], out["point_cpu"] = timed(frames)
        out["boot_wall"] = out["boot_cpu"] = None
        if n_boot > 0:
            boot = {"n_boot": n_boot, "ci_quantiles": [0.025, 0.975], "random_state": 0}
            _, out["boot_wall"], out["boot_cpu"] = timed(lambda: frames(**boot))
    return out


def class_agreement(report: dict, frames: dict, classes: tuple[str, ...]) -> float:
    """Largest |FairAudit − Fairlearn| over per-class, per-group selection rate, TPR, FPR and AUC."""
    worst = 0.0
    evaluation = next(e for e in report["evaluations"] if e["exit"] == "policy")
    for grouping in evaluation["groupings"][1:]:
        ours = {g["group"]: g for g in grouping["groups"]}
        for name in classes:
            frame = frames[(name, grouping["attribute"])].by_group
            for key, row in frame.iterrows():
                keys = key if isinstance(key, tuple) else (key,)
                label = (
                    keys[0] if len(keys) == 1 else ", ".join(f"{a}={v}" for a, v in zip(ATTRIBUTES, keys, strict=True))
                )
                entry = ours[label]["per_class"][name]
                selection = (entry["tpr"]["value"] * entry["n_pos"] + entry["fpr"]["value"] * entry["n_neg"]) / (
                    entry["n_pos"] + entry["n_neg"]
                )
                for metric, value in (
                    ("selection_rate", selection),
                    ("tpr", entry["tpr"]["value"]),
                    ("fpr", entry["fpr"]["value"]),
                    ("auc", entry["auc"]["value"]),
                ):
                    worst = max(worst, abs(value - row[metric]))
    return worst


def main_classes(args: argparse.Namespace) -> None:
    """The ``--classes`` mode: the multi-class report against per-class MetricFrames."""
    p = simulate_classes(args.n, args.seed, args.classes)
    print(f"n = {args.n:,}, classes = {args.classes}, groupings: sex 2, age_group 4, skin_type 6, intersection 48")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cores available: {cores}; load average: {os.getloadavg()[0]:.2f}\n")
    build_report(p, attributes=ATTRIBUTES, n_boot=2)  # warm-up
    _point, point_wall, point_cpu = timed(lambda: build_report(p, attributes=ATTRIBUTES, n_boot=0))
    report, full_wall, full_cpu = timed(lambda: build_report(p, attributes=ATTRIBUTES, n_boot=args.boot))
    print("FairAudit build_report (multi-class)")
    print(f"  point estimates only          {point_wall:8.2f} s wall  {point_cpu:8.2f} s CPU")
    if args.boot:
        print(f"  full report, {args.boot:5d} resamples  {full_wall:8.2f} s wall  {full_cpu:8.2f} s CPU")
        per_resample = (full_wall - point_wall) / args.boot
        print(f"  bootstrap per resample        {per_resample * 1e3:8.2f} ms wall (all groupings, all classes)")
        print(f"  target whole report < 15 s: {'met' if full_wall < 15 else 'NOT met'}")
    print()
    if args.skip_fairlearn:
        return
    fl = fairlearn_classes(p, args.fairlearn_boot)
    k = args.fairlearn_boot
    print(f"Fairlearn 0.15 MetricFrame per class (selection rate, TPR, FPR, AUC; {args.classes} classes x 4 groupings)")
    print(f"  MetricFrames (point estimates) {fl['point_wall']:8.2f} s wall  {fl['point_cpu']:8.2f} s CPU")
    print("Ratios (Fairlearn / FairAudit)")
    print(f"  point estimates                            {fl['point_wall'] / point_wall:8.1f}x")
    if fl["boot_wall"] is not None:
        per_fl = max(fl["boot_wall"] - fl["point_wall"], 0.0) / k
        projected = fl["point_wall"] + per_fl * args.boot
        print(f"  MetricFrames with n_boot={k:<3d} {fl['boot_wall']:8.2f} s wall -> {per_fl:.2f} s per resample")
        print(f"  {args.boot} resamples: PROJECTED linearly from {k} resamples run: {projected:,.0f} s")
        print(f"  whole report, {args.boot} resamples (projected)  {projected / full_wall:8.0f}x")
    worst = class_agreement(report, fl["frames"], p.classes)
    print(
        f"\nAgreement: max |FairAudit - Fairlearn| over per-class, per-group selection rate, TPR, FPR, AUC"
        f" = {worst:.2e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="number of predictions")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples for FairAudit")
    parser.add_argument("--fairlearn-boot", type=int, default=5, help="MetricFrame resamples actually run")
    parser.add_argument("--exits", type=int, default=1, help="exits of the simulated model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-fairlearn", action="store_true")
    parser.add_argument("--patients", type=int, default=30_000, help="also time the patient-clustered report (0: skip)")
    parser.add_argument("--classes", type=int, default=0, help="K >= 2: time the K-class report instead")
    args = parser.parse_args()
    if args.classes:
        if args.classes < 2:
            parser.error("--classes needs at least 2 classes")
        main_classes(args)
        return

    p = simulate(args.n, args.seed, args.exits)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"n = {args.n:,}, exits = {args.exits}, groupings: sex 2, age_group 4, skin_type 6, intersection 48")
    print(f"cores available: {cores}; load average: {os.getloadavg()[0]:.2f}\n")

    build_report(p, attributes=ATTRIBUTES, n_boot=2)  # warm-up (imports, allocator)
    _point, point_wall, point_cpu = timed(lambda: build_report(p, attributes=ATTRIBUTES, n_boot=0))
    report, full_wall, full_cpu = timed(lambda: build_report(p, attributes=ATTRIBUTES, n_boot=args.boot))
    print("FairAudit build_report")
    print(f"  point estimates only          {point_wall:8.2f} s wall  {point_cpu:8.2f} s CPU")
    print(f"  full report, {args.boot:5d} resamples  {full_wall:8.2f} s wall  {full_cpu:8.2f} s CPU")
    per_resample = (full_wall - point_wall) / max(args.boot, 1)
    print(f"  bootstrap per resample        {per_resample * 1e3:8.2f} ms wall (all groupings, all metrics)")
    target = "met" if full_wall < 5 else "NOT met"
    print(f"  target whole report < 5 s: {target}")
    if args.patients:
        keys = np.random.default_rng(args.seed + 1).integers(0, args.patients, args.n).astype(str)
        clustered = dataclasses.replace(p, clusters=keys)
        _, cl_wall, cl_cpu = timed(lambda: build_report(clustered, attributes=ATTRIBUTES, n_boot=args.boot))
        print(
            f"  clustered, {args.patients:,} patients  {cl_wall:8.2f} s wall  {cl_cpu:8.2f} s CPU"
            f"  ({cl_wall / full_wall:.2f}x the stratified report)"
        )
    print()
    if args.skip_fairlearn:
        return

    fl = fairlearn_run(p, args.fairlearn_boot)
    k = args.fairlearn_boot
    per_fl = max(fl["boot_wall"] - fl["point_wall"], 0.0) / k
    fl_point = fl["point_wall"] + fl["diff_wall"]
    projected = fl_point + per_fl * args.boot
    print("Fairlearn 0.15 MetricFrame (count, selection rate, TPR, FPR, TNR, AUC, Brier; 4 groupings)")
    print(f"  MetricFrames (point estimates) {fl['point_wall']:8.2f} s wall  {fl['point_cpu']:8.2f} s CPU")
    print(f"  the 12 difference functions    {fl['diff_wall']:8.2f} s wall  {fl['diff_cpu']:8.2f} s CPU")
    print(
        f"  MetricFrames with n_boot={k:<3d}    {fl['boot_wall']:8.2f} s wall  {fl['boot_cpu']:8.2f} s CPU"
        f"  -> {per_fl:.2f} s per resample (4 groupings)"
    )
    print(f"  {args.boot} resamples: PROJECTED linearly from {k} resamples run: {projected:,.0f} s\n")
    print("Ratios (Fairlearn / FairAudit, same metrics or more on FairAudit's side)")
    print(f"  point estimates (incl. the 12 differences) {fl_point / point_wall:8.1f}x")
    print(f"  one bootstrap resample                     {per_fl / max(per_resample, 1e-9):8.0f}x")
    ratio = projected / full_wall
    verdict = "met" if ratio >= 20 else "NOT met"
    print(f"  whole report, {args.boot} resamples (projected)  {ratio:8.0f}x  (target >= 20x: {verdict})")
    # CPU time is far less disturbed by other load; FairAudit's counts both of its threads.
    per_fl_cpu = max(fl["boot_cpu"] - fl["point_cpu"], 0.0) / k
    projected_cpu = fl["point_cpu"] + fl["diff_cpu"] + per_fl_cpu * args.boot
    print(f"  same, in CPU seconds ({projected_cpu:,.0f} s vs {full_cpu:.2f} s)  {projected_cpu / full_cpu:8.0f}x")
    worst = agreement(report, fl["frames"])
    print(f"\nAgreement: max |FairAudit - Fairlearn| over per-group rates, AUC and Brier = {worst:.2e}")


if __name__ == "__main__":
    main()
