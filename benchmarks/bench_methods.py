"""The four training methods compared as one study: pooled out-of-fold accuracy, fairness and compute
with intervals, the across-fold spread, and the paired verdict of each method against ``erm``.

A synthetic dermatology cohort (``app.cohorts.synth.derm``: the Fitzpatrick 17k layout with fainter
lesions on dark skin) of ``--images`` images is uploaded (preset ``fitzpatrick17k``) and ingested,
then ``POST /v1/studies`` trains every method on the same ``--folds`` patient-grouped folds ×
``--seeds`` seeds, with ``erm`` first (the reference). The study's result is printed as the README's
methods table: per method the pooled AUC, PFD, EOpp1 and worst-group AUC over the training attribute
(served output; 95 % patient-clustered bootstrap interval, then the across-fold mean ± sd), the mean
compute per sample (fraction of the full network's multiply-adds), and the study's verdict against
``erm`` per attribute (better / worse / mixed / not distinguishable).

``--task multiclass`` runs the same study on the multi-class derm task (``--partitions 3 9``: the
Fitzpatrick 17k three- and nine-partition labels, cohort ``task: multiclass``) and prints, per partition,
the fair multi-exit paper's columns: accuracy, macro F1, Eopp0, Eopp1 and Eodd over the attribute (pooled,
interval, fold spread; the paper-convention value in brackets), compute, and each method's relative
change of Eopp1, Eodd and macro F1 against ``erm`` beside the paper's claim for ME-VGG-11 against VGG-11
(Eopp1 −11 %, Eodd −12 %, F1 not worse).

``--terms hsic pairwise_eo`` compares fairness terms with and without multi-exit instead of the four
methods: ``erm`` (the reference), ``fair_multi_exit`` (ME), then per term its single-exit run and ME +
the term (configs spelled as ``multi_exit`` + ``terms``, docs/methods.md). ``mfd`` cannot run in a study:
its teacher would have to be trained on each fold's training part, and studies refuse teachers.
``--on-split`` (multi-class) runs every method and term, MFD included, where MFD can be run honestly: on the
cohort's own split, per seed, the erm and ME runs (weights kept) being the teachers of mfd and ME + mfd, all
evaluated on the same test split (mean ± sd over seeds). Also the way to a 9-class table when the cohort is
too small for folds (every label × group stratum needs a patient in each fold).

``--pooled-head`` adds ``fair_multi_exit`` with the cheap internal-classifier head (``ic_head: pooled``,
pooling before its first conv; docs/methods.md, not the paper's head) right after the paper-head
``fair_multi_exit`` in any of the studies above, so its accuracy, fairness and compute sit beside the paper
head's on the same folds and seeds (the study's verdicts are still against ``erm``).

By default the app runs in this process with its job supervisor (SQLite in a temporary folder);
``--url`` and ``--key`` send the same requests to a running server instead.

    .venv/bin/python benchmarks/bench_methods.py                              # 5 folds × 3 seeds, 2,500 images
    .venv/bin/python benchmarks/bench_methods.py --folds 3 --seeds 2 --images 1200 --image-size 32 --epochs 3
    .venv/bin/python benchmarks/bench_methods.py --task multiclass --partitions 3 9 --folds 2 --seeds 3
    .venv/bin/python benchmarks/bench_methods.py --task multiclass --partitions 9 --seeds 3 --terms hsic pairwise_eo
    .venv/bin/python benchmarks/bench_methods.py --task multiclass --partitions 9 --images 4000 --epochs 10 --on-split
    .venv/bin/python benchmarks/bench_methods.py --pooled-head                # + ME with the pooled IC head
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from app.auth.service import create_key, ensure_organisation
from app.cohorts.synth.derm import write_derm_archive
from app.db.engine import make_engine, make_session_factory, transaction
from app.db.migrate import upgrade_to_head
from app.main import create_app
from app.settings import Settings

METHODS = ("erm", "pairwise_eo", "fair_multi_exit", "fair_multi_exit_pairwise_eo")  # the reference first
STUDY_TERMS = ("pairwise_eo", "hsic")  # mfd needs a teacher per fold, which a study cannot give


def compared_runs(terms: list[str], pooled_head: bool = False) -> list[dict[str, Any]]:
    """The study's configs' method fields: the four methods, or erm, ME and each term without and with ME;
    with ``pooled_head`` ME with the pooled IC head right after ME with the paper's."""
    if not terms:
        runs: list[dict[str, Any]] = [{"method": m} for m in METHODS]
    else:
        runs = [{"method": "erm"}, {"method": "fair_multi_exit"}]
        for term in terms:
            runs += [{"multi_exit": multi_exit, "terms": [{"name": term}]} for multi_exit in (False, True)]
    if pooled_head:
        at = runs.index({"method": "fair_multi_exit"}) + 1
        runs.insert(at, {"method": "fair_multi_exit", "ic_head": "pooled"})
    return runs


def run_name(study: dict[str, Any], summary: dict[str, Any]) -> str:
    """A study row's name: its method, and the IC head when it is not the paper's."""
    head = study["configs"][summary["index"]].get("ic_head", "paper")
    return summary["method"] if head == "paper" else f"{summary['method']} ({head} IC head)"


GAPS = ("pfd", "eopp1", "worst_group_auc")
MULTICLASS_GAPS = ("eopp0", "eopp1", "eodd")
LABEL_FIELDS = {3: "three_partition_label", 9: "nine_partition_label"}
#: The fair multi-exit paper's ME-VGG-11 against VGG-11 on Fitzpatrick 17k (docs/methods.md): relative change.
PAPER_CLAIM = {"eopp1": (0.361, 0.320), "eodd": (0.182, 0.160), "macro_f1": (0.510, 0.516)}


@contextmanager
def in_process(tmp: Path, args: argparse.Namespace, jobs: int) -> Iterator[httpx.Client]:
    """The app with its supervisor running (the lifespan starts it), on SQLite, and an auditor key."""
    settings = Settings(
        environment="test",
        database_url=f"sqlite:///{tmp}/bench.db",
        data_dir=tmp / "data",
        model_dir=tmp / "models",
        max_concurrent_jobs=args.concurrency,
        max_study_jobs=max(jobs, 1),
        bootstrap_resamples=args.boot,
    )
    engine = make_engine(settings.database_url)
    upgrade_to_head(engine)
    with transaction(make_session_factory(engine)) as session:
        _, key = create_key(session, ensure_organisation(session, "bench").id, "auditor")
    engine.dispose()
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield client


def checked(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        raise SystemExit(f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text}")
    return dict(response.json())


def wait_until(client: httpx.Client, url: str, busy: str) -> dict[str, Any]:
    while (resource := checked(client.get(url)))["status"] == busy:
        time.sleep(2.0)
    return resource


def upload_cohort(client: httpx.Client, tmp: Path, args: argparse.Namespace, partition: int | None) -> dict[str, Any]:
    """Upload the synthetic derm cohort (binary, or multi-class on ``partition``'s labels); wait until ready."""
    archive = tmp / "derm.zip"
    config: dict[str, Any] = {"name": "bench derm", "preset": "fitzpatrick17k", "image_size": args.image_size}
    if partition is None:
        write_derm_archive(archive, n=args.images, seed=11, image_size=args.image_size)
    else:
        write_derm_archive(archive, n=args.images, seed=11, image_size=args.image_size, task="multiclass")
        config |= {"task": "multiclass", "label_field": LABEL_FIELDS[partition]}
    with archive.open("rb") as fh:
        cohort = checked(
            client.post("/v1/cohorts", files={"archive": ("derm.zip", fh)}, data={"config": json.dumps(config)})
        )
    cohort = wait_until(client, f"/v1/cohorts/{cohort['id']}", "ingesting")
    if cohort["status"] != "ready":
        raise SystemExit(f"ingestion failed: {cohort['errors']}")
    return cohort


def training_fields(args: argparse.Namespace, partition: int | None) -> dict[str, Any]:
    """What every compared run shares: the small backbone, the schedule, no augmentation."""
    return {
        "sensitive_attributes": [args.attribute],
        "backbone": "small",
        "epochs": args.epochs,
        "batch_size": 64,
        "lr": 0.002,
        "seed": 0,
        "patience": None,
        "augment": {"hflip": False, "vflip": False, "rotate_degrees": 0, "brightness": 0, "contrast": 0},
        **({} if partition is None else {"class_balanced": True}),
    }


def run_study(
    client: httpx.Client, tmp: Path, args: argparse.Namespace, partition: int | None = None
) -> tuple[dict[str, Any], float]:
    """Upload the cohort and run the study of the compared runs over folds and seeds."""
    cohort = upload_cohort(client, tmp, args, partition)
    training = training_fields(args, partition)
    body = {
        "cohort_id": cohort["id"],
        "name": "bench_methods",
        "configs": [{**training, **run} for run in compared_runs(args.terms, args.pooled_head)],
        "folds": args.folds,
        "seeds": args.seeds,
    }
    started = time.monotonic()
    study = checked(client.post("/v1/studies", json=body))
    print(f"study {study['id']}: {len(study['children'])} training jobs", flush=True)
    study = wait_until(client, f"/v1/studies/{study['id']}", "running")
    if study["status"] != "succeeded":
        raise SystemExit(f"study {study['status']}: {study['error']}")
    return study, time.monotonic() - started


# On the cohort's own split: each run's fields, and for mfd the run whose model is its teacher (the
# teacher must have the student's architecture: single-exit for mfd, multi-exit for ME + mfd).
SPLIT_RUNS: dict[str, dict[str, Any]] = {
    "erm": {"method": "erm", "keep_weights": True},
    "ME": {"method": "fair_multi_exit", "keep_weights": True},
    "pairwise_eo": {"method": "pairwise_eo"},
    "ME + pairwise_eo": {"method": "fair_multi_exit_pairwise_eo"},
    "hsic": {"multi_exit": False, "terms": [{"name": "hsic"}]},
    "ME + hsic": {"multi_exit": True, "terms": [{"name": "hsic"}]},
    "mfd": {"multi_exit": False, "teacher": "erm"},
    "ME + mfd": {"multi_exit": True, "teacher": "ME"},
}
#: Each term without and with multi-exit, and what the fair multi-exit paper reports for the pair
#: (Eopp1 on Fitzpatrick 17k, docs/methods.md).
SPLIT_PAIRS = {
    ("erm", "ME"): "ME-VGG-11 vs VGG-11: Eopp1 0.361 → 0.320 (−11 %), Eodd −12 %, F1 +1 %",
    ("pairwise_eo", "ME + pairwise_eo"): "not in the paper",
    ("hsic", "ME + hsic"): "HSIC: Eopp1 0.331 → 0.314 (−5 %)",
    ("mfd", "ME + mfd"): "MFD: Eopp1 0.334 → 0.319 (−4 %)",
}


def run_on_split(
    client: httpx.Client, tmp: Path, args: argparse.Namespace, partition: int
) -> tuple[dict[str, list[dict[str, Any]]], float]:
    """Every method and term of ``SPLIT_RUNS`` on the cohort's own split, per seed, all evaluated on the
    same test split. MFD's teacher must not have seen the test images, which a study cannot give (a
    teacher trained on the stored split has seen every fold's); here the erm and ME runs (kept weights)
    are the teachers of mfd and ME + mfd. Answers the test-split reports per run."""
    cohort = upload_cohort(client, tmp, args, partition)
    training = {**training_fields(args, partition), "cohort_id": cohort["id"]}
    started = time.monotonic()
    reports: dict[str, list[dict[str, Any]]] = {name: [] for name in SPLIT_RUNS}
    for seed in range(args.seeds):
        models: dict[str, str] = {}
        for wave in (["erm", "ME"], [n for n in SPLIT_RUNS if n not in ("erm", "ME")]):
            submitted = {
                name: checked(client.post("/v1/jobs", json=split_body(training, seed, name, models))) for name in wave
            }
            for name, job in submitted.items():
                finished = wait_job(client, job["id"])
                models[name] = finished["result"]["model_version_id"]
                reports[name].append(evaluation_report(client, finished))
        print(f"seed {seed}: {len(SPLIT_RUNS)} jobs done", flush=True)
    return reports, time.monotonic() - started


def split_body(training: dict[str, Any], seed: int, name: str, models: dict[str, str]) -> dict[str, Any]:
    run = dict(SPLIT_RUNS[name])
    teacher = run.pop("teacher", None)
    if teacher is not None:
        run["terms"] = [{"name": "mfd", "teacher_model_version_id": models[teacher]}]
    return {**training, "seed": seed, **run}


def wait_job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    while (job := checked(client.get(f"/v1/jobs/{job_id}")))["status"] in ("queued", "running"):
        time.sleep(2.0)
    if job["status"] != "succeeded":
        raise SystemExit(f"job {job_id} {job['status']}: {job['error']}")
    return job


def evaluation_report(client: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    return dict(checked(client.get(f"/v1/evaluations/{job['result']['evaluation_id']}"))["report"])


def print_split_table(reports: dict[str, list[dict[str, Any]]], attribute: str, partition: int) -> None:
    """Per run: mean ± sd over seeds of the test-split values, with the seeds' mean 95 % interval; a gap
    FairAudit leaves out for too few samples falls back to the paper-convention value (marked †). Then
    the relative change multi-exit brings to each term, beside the paper's."""
    values = {name: [multiclass_values(r, attribute) for r in runs] for name, runs in reports.items()}
    metrics = ("accuracy", "macro_f1", *MULTICLASS_GAPS)
    print(f"\n{partition}-class derm ({LABEL_FIELDS[partition]}), test split, gaps over {attribute}")
    print("| run | accuracy | macro F1 | Eopp0 | Eopp1 | Eodd | compute |")
    print("|---|---|---|---|---|---|---|")
    means: dict[str, dict[str, float | None]] = {}
    for name, rows in values.items():
        cells = []
        means[name] = {}
        for m in metrics:
            cell_text, means[name][m] = seed_cell([r[m] for r in rows])
            cells.append(cell_text)
        compute = statistics.fmean(mean_compute(r) for r in reports[name])
        print(f"| {name} | " + " | ".join(cells) + f" | {compute:.2f} |")
    print("\nrelative change that multi-exit brings to each run (mean over seeds)")
    print("| single-exit → multi-exit | Eopp1 | Eodd | macro F1 | the paper |")
    print("|---|---|---|---|---|")
    for (single, multi), paper in SPLIT_PAIRS.items():
        cells = [relative(means[multi][m], means[single][m]) for m in ("eopp1", "eodd", "macro_f1")]
        print(f"| {single} → {multi} | " + " | ".join(cells) + f" | {paper} |")


def seed_cell(entries: list[dict[str, Any]]) -> tuple[str, float | None]:
    """``mean ± sd [mean ci_low, mean ci_high]`` over seeds, and the mean; † when any seed's value is
    the paper-convention one (FairAudit's was left out)."""
    picked = [(e.get("value"), e) if e.get("value") is not None else (e.get("paper_value"), None) for e in entries]
    present = [v for v, _ in picked if v is not None]
    if not present:
        return "n/a", None
    mean = statistics.fmean(present)
    sd = statistics.stdev(present) if len(present) > 1 else 0.0
    bounds = [(e["ci_low"], e["ci_high"]) for _, e in picked if e is not None and e.get("ci_low") is not None]
    interval = ""
    if bounds:
        interval = f" [{statistics.fmean(b[0] for b in bounds):.3f}, {statistics.fmean(b[1] for b in bounds):.3f}]"
    dagger = "†" if any(e is None for v, e in picked if v is not None) else ""
    missing = "" if len(present) == len(entries) else f" ({len(present)}/{len(entries)})"
    return f"{mean:.3f} ± {sd:.3f}{interval}{dagger}{missing}", mean


def policy_value(report: dict[str, Any], attribute: str, metric: str) -> dict[str, Any]:
    policy = next(e for e in report["evaluations"] if e["exit"] == "policy")
    grouping = next(g for g in policy["groupings"] if g["attribute"] == attribute)
    return dict(
        grouping["gaps"][metric] if metric in grouping.get("gaps", {}) else grouping["groups"][0]["metrics"][metric]
    )


def cell(value: dict[str, Any]) -> str:
    """``pooled [ci] (mean ± sd across folds)``."""
    if value.get("value") is None:
        return f"n/a ({value.get('status')})"
    text = f"{value['value']:.3f} [{value['ci_low']:.3f}, {value['ci_high']:.3f}]"
    folds = value.get("folds") or {}
    if folds.get("mean") is not None:
        text += f" ({folds['mean']:.3f} ± {folds['sd']:.3f})" if folds.get("sd") is not None else ""
    return text


def mean_compute(report: dict[str, Any]) -> float:
    exits = report.get("exits")
    if not exits:
        return 1.0
    overall = next(g for g in exits["groupings"] if g["kind"] == "overall")
    return float(overall["groups"][0]["mean_compute"]["value"])


def verdict_of(comparison: dict[str, Any] | None, attribute: str) -> str:
    if comparison is None:
        return "reference"
    return ", ".join(
        f"{v['attribute']}: {v['verdict']}" for v in comparison["verdicts"] if v["attribute"] in ("overall", attribute)
    )


def print_table(client: httpx.Client, study: dict[str, Any], attribute: str) -> None:
    comparisons = {c["model"]: c for c in study["result"]["comparison"]["comparisons"]}
    print(f"\n| method | AUC | PFD ({attribute}) | EOpp1 | worst-group AUC | compute | verdict vs erm |")
    print("|---|---|---|---|---|---|---|")
    for summary in study["result"]["configs"]:
        report = checked(client.get(f"/v1/evaluations/{summary['evaluation_id']}"))["report"]
        cells = [cell(policy_value(report, "overall", "auc"))]
        cells += [cell(policy_value(report, attribute, gap)) for gap in GAPS]
        verdict = verdict_of(comparisons.get(summary["label"]), attribute)
        print(f"| {run_name(study, summary)} | " + " | ".join(cells) + f" | {mean_compute(report):.2f} | {verdict} |")


def multiclass_values(report: dict[str, Any], attribute: str) -> dict[str, dict[str, Any]]:
    """Accuracy and macro F1 overall, and the multi-class gaps over ``attribute``, of the served output."""
    policy = next(e for e in report["evaluations"] if e["exit"] == "policy")
    overall = next(g for g in policy["groupings"] if g["kind"] == "overall")["groups"][0]["metrics"]
    gaps = next(g for g in policy["groupings"] if g["attribute"] == attribute)["gaps"]
    return {"accuracy": overall["accuracy"], "macro_f1": overall["macro_f1"], **{g: gaps[g] for g in MULTICLASS_GAPS}}


def relative(new: float | None, old: float | None) -> str:
    return "n/a" if new is None or not old else f"{(new - old) / old:+.0%}"


def print_multiclass_table(client: httpx.Client, study: dict[str, Any], attribute: str, partition: int) -> None:
    comparisons = {c["model"]: c for c in study["result"]["comparison"]["comparisons"]}
    rows = []
    for summary in study["result"]["configs"]:
        report = checked(client.get(f"/v1/evaluations/{summary['evaluation_id']}"))["report"]
        rows.append((summary, multiclass_values(report, attribute), mean_compute(report)))
    print(f"\n{partition}-class derm ({LABEL_FIELDS[partition]}), gaps over {attribute}")
    print("| method | accuracy | macro F1 | Eopp0 | Eopp1 | Eodd | compute | verdict vs erm |")
    print("|---|---|---|---|---|---|---|---|")
    for summary, values, compute in rows:
        cells = [cell(values["accuracy"]), cell(values["macro_f1"])]
        for gap in MULTICLASS_GAPS:
            paper = values[gap].get("paper_value")
            cells.append(cell(values[gap]) + ("" if paper is None else f" [paper {paper:.3f}]"))
        verdict = verdict_of(comparisons.get(summary["label"]), attribute)
        print(f"| {run_name(study, summary)} | " + " | ".join(cells) + f" | {compute:.2f} | {verdict} |")
    reference = rows[0][1]
    print("\nrelative change against erm (the paper, ME-VGG-11 vs VGG-11: Eopp1 −11 %, Eodd −12 %, F1 +1 %)")
    print("| method | Eopp1 | Eodd | macro F1 |")
    print("|---|---|---|---|")
    for summary, values, _ in rows[1:]:
        cells = [relative(values[m].get("value"), reference[m].get("value")) for m in ("eopp1", "eodd", "macro_f1")]
        print(f"| {run_name(study, summary)} | " + " | ".join(cells) + " |")
    claims = ", ".join(f"{m} {relative(new, old)}" for m, (old, new) in PAPER_CLAIM.items())
    print(f"| paper (ME-VGG-11 vs VGG-11) | {claims} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--images", type=int, default=2500, help="synthetic derm images")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--attribute", default="skin_tone", choices=["skin_tone", "skin_type"])
    parser.add_argument("--task", default="binary", choices=["binary", "multiclass"])
    parser.add_argument("--partitions", type=int, nargs="+", default=[3, 9], choices=sorted(LABEL_FIELDS))
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples (in process)")
    parser.add_argument("--concurrency", type=int, default=1, help="job processes at once (in process)")
    parser.add_argument("--terms", nargs="*", default=[], choices=STUDY_TERMS, help="compare terms ± multi-exit")
    parser.add_argument(
        "--on-split",
        action="store_true",
        help="every method and term (mfd included) on the cohort's own split per seed (multiclass)",
    )
    parser.add_argument(
        "--pooled-head", action="store_true", help="also fair_multi_exit with the pooled IC head (ic_head: pooled)"
    )
    parser.add_argument("--url", help="a running server instead of the in-process app (needs --key)")
    parser.add_argument("--key", help="an auditor's API key for --url")
    args = parser.parse_args()
    if bool(args.url) != bool(args.key):
        parser.error("--url and --key go together")
    runs = len(compared_runs(args.terms, args.pooled_head))
    jobs = runs * args.folds * args.seeds
    partitions: list[int | None] = [None] if args.task == "binary" else list(args.partitions)

    if args.on_split and args.task != "multiclass":
        parser.error("--on-split runs on the multi-class task (--task multiclass)")
    if args.on_split and args.pooled_head:
        parser.error("--pooled-head adds a run to a study; --on-split runs no study")
    with tempfile.TemporaryDirectory() as name, connect(Path(name), args, jobs) as client:
        for partition in partitions:
            if args.on_split and partition is not None:
                reports, seconds = run_on_split(client, Path(name), args, partition)
                print_split_table(reports, args.attribute, partition)
                print(
                    f"\n{args.images} synthetic derm images at {args.image_size} px, small backbone, {args.epochs} "
                    f"epochs, {args.seeds} seeds × {len(SPLIT_RUNS)} runs = {len(SPLIT_RUNS) * args.seeds} jobs in "
                    f"{seconds / 60:.1f} min; the cohort's test split, served output; mean ± sd over seeds "
                    "[the seeds' mean 95 % patient-clustered interval]"
                )
                continue
            study, seconds = run_study(client, Path(name), args, partition)
            if partition is None:
                print_table(client, study, args.attribute)
            else:
                print_multiclass_table(client, study, args.attribute, partition)
            print(
                f"\n{args.images} synthetic derm images at {args.image_size} px, small backbone, {args.epochs} "
                f"epochs, {args.folds} folds × {args.seeds} seeds × {runs} runs = {jobs} jobs in "
                f"{seconds / 60:.1f} min; pooled out-of-fold, served output, 95 % patient-clustered interval "
                "(across-fold mean ± sd)"
            )


@contextmanager
def connect(tmp: Path, args: argparse.Namespace, jobs: int) -> Iterator[httpx.Client]:
    """A client of ``--url`` when given, else of the in-process app."""
    if args.url:
        with httpx.Client(base_url=args.url, headers={"Authorization": f"Bearer {args.key}"}, timeout=120) as client:
            yield client
    else:
        with in_process(tmp, args, jobs * len(args.partitions)) as client:
            yield client


if __name__ == "__main__":
    main()
