"""Cohort ingestion throughput and memory against a bare Pillow decode-and-resize loop.

For each archive size: a synthetic derm archive of 512×512 JPEGs is written (and its JPEGs written
out once, untimed, for the reference), then, each in its own process so peak memory is measured per
step,

- ingestion: what the upload request does after receiving the archive — ``open_archive`` +
  ``parse_manifest`` + ``check_listed_images`` (the headers read from the archive, nothing
  extracted) — then the job's ``build_cache`` decoding straight from the archive with
  ``--workers`` processes;
- reference: the same decode → ``draft`` → ``convert`` → centre-crop resize over the JPEG files,
  results discarded, in a spawn pool of ``--workers`` processes with the same chunking —
  the floor any ingestion pipeline pays.

It prints images/s for both, their ratio (target ≥ 0.8), the upload step's seconds, the disk the
cohort holds at its peak (the archive and the finished cache: nothing else is written), and the
peak RSS of the ingestion process and of its largest worker (``ru_maxrss`` of self and children),
which should not grow with the archive. Usage::

    python benchmarks/bench_ingest.py --sizes 1000 5000 --workers 2 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image

# Only the standard library and Pillow at module level: spawned reference workers re-import this
# module, and they must stay as bare as a plain Pillow loop. Steps import the app inside.
ROOT = Path(__file__).resolve().parents[1]


def reference_chunk(paths: list[str], size: int) -> None:
    """Decode and resize like ingestion does, with nothing else around it."""
    for path in paths:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))
            image = image.convert("RGB")
            width, height = image.size
            side = min(width, height)
            left, top = (width - side) / 2, (height - side) / 2
            box = (left, top, left + side, top + side)
            image.resize((size, size), Image.Resampling.BILINEAR, box=box, reducing_gap=3.0).tobytes()


def step_generate(args: argparse.Namespace) -> dict[str, float]:
    from app.cohorts.synth.derm import write_derm_archive

    start = time.perf_counter()
    write_derm_archive(Path(args.archive), n=args.n, seed=0, image_size=args.source_px, fmt="jpg")
    return {"seconds": time.perf_counter() - start}


def step_extract(args: argparse.Namespace) -> dict[str, float]:
    """The reference's input: the archive's JPEGs as files (untimed; ingestion never does this)."""
    import zipfile

    with zipfile.ZipFile(args.archive) as zf:
        zf.extractall(args.work, [name for name in zf.namelist() if name.endswith(".jpg")])
    return {"seconds": 0.0}


def step_ingest(args: argparse.Namespace) -> dict[str, float]:
    from app.cohorts.archive import ArchiveLimits, open_archive
    from app.cohorts.config import CohortConfig
    from app.cohorts.image_check import check_listed_images
    from app.cohorts.image_limits import ImageLimits
    from app.cohorts.ingest import build_cache
    from app.cohorts.manifest import parse_manifest
    from app.settings import Settings

    work = Path(args.work)
    archive = Path(args.archive)
    config = CohortConfig(name="bench", preset="fitzpatrick17k", image_size=args.image_size)
    settings = Settings()
    start = time.perf_counter()
    with open_archive(archive, work / "manifest", ArchiveLimits.from_settings(settings)) as checked:
        manifest = parse_manifest(checked.manifest, config, files=checked.files, read_images=checked.read)
        parsed_at = time.perf_counter()
        check_listed_images(checked.read, manifest.items, ImageLimits.from_settings(settings))
    shutil.rmtree(work / "manifest")
    uploaded_at = time.perf_counter()
    build_cache(manifest, archive, work / "cache", config.image_size, config.channels, workers=args.workers)
    end = time.perf_counter()
    written = sum(p.stat().st_size for p in work.rglob("*") if p.is_file())
    return {
        "seconds": end - start,
        "upload_s": uploaded_at - start,
        "manifest_s": parsed_at - start,
        "cache_s": end - uploaded_at,
        "disk_mib": (archive.stat().st_size + written) / 2**20,
        **_peak_rss(),
    }


def step_reference(args: argparse.Namespace) -> dict[str, float]:
    paths = sorted(str(p) for p in Path(args.work).glob("*.jpg"))
    step = max(1, min(256, -(-len(paths) // (args.workers * 8))))
    chunks = [paths[s : s + step] for s in range(0, len(paths), step)]
    start = time.perf_counter()
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(reference_chunk, chunks, [args.image_size] * len(chunks)))
    return {"seconds": time.perf_counter() - start, "n": len(paths), **_peak_rss()}


def _peak_rss() -> dict[str, float]:
    """Peak resident memory in MiB (Linux reports ru_maxrss in KiB)."""
    return {
        "rss_self_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


STEPS = {"generate": step_generate, "extract": step_extract, "ingest": step_ingest, "reference": step_reference}


def run_step(name: str, **kwargs: object) -> dict[str, float]:
    """Run one step in a fresh interpreter, so each step's peak memory is its own."""
    argv = [sys.executable, __file__, "--step", name, *(f"--{k.replace('_', '-')}={v}" for k, v in kwargs.items())]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def benchmark(sizes: list[int], rounds: int, workers: int, source_px: int, image_size: int) -> list[dict]:
    results = []
    base = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    try:
        for n in sizes:
            archive = base / f"derm-{n}.zip"
            generated = run_step("generate", n=n, archive=archive, source_px=source_px)
            print(
                f"n={n}: archive {archive.stat().st_size / 2**20:.0f} MiB in {generated['seconds']:.0f} s", flush=True
            )
            jpegs = base / f"jpegs-{n}"
            run_step("extract", archive=archive, work=jpegs)
            best: dict[str, dict[str, float]] = {}
            for _ in range(rounds):  # alternate the two, keep each one's fastest round
                for name in ("ingest", "reference"):
                    work = base / "work" if name == "ingest" else jpegs
                    if name == "ingest":
                        shutil.rmtree(work, ignore_errors=True)
                    result = run_step(name, n=n, archive=archive, work=work, workers=workers, image_size=image_size)
                    if name not in best or result["seconds"] < best[name]["seconds"]:
                        best[name] = result
            ingest, reference = best["ingest"], best["reference"]
            row = {
                "n": n,
                "ingest_img_s": n / ingest["seconds"],
                "reference_img_s": n / reference["seconds"],
                "ratio": reference["seconds"] / ingest["seconds"],
                "cache_only_ratio": reference["seconds"] / ingest["cache_s"],
                "upload_s": ingest["upload_s"],
                "manifest_s": ingest["manifest_s"],
                "disk_mib": ingest["disk_mib"],
                "rss_main_mib": ingest["rss_self_mib"],
                "rss_worker_mib": ingest["rss_worker_mib"],
                "reference_rss_worker_mib": reference["rss_worker_mib"],
            }
            print(json.dumps({k: round(v, 2) for k, v in row.items()}), flush=True)
            results.append(row)
            shutil.rmtree(jpegs, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return results


def print_table(results: list[dict], workers: int, source_px: int, image_size: int) -> None:
    print(
        f"\n{source_px}×{source_px} JPEG (q90) → {image_size}×{image_size}×3, {workers} worker processes "
        "(best of the rounds)\n"
    )
    print(
        "| images | ingestion (upload checks + cache) | bare Pillow loop | ratio | ratio, cache step only "
        "| upload step (manifest) | peak disk | peak RSS main / worker |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['n']:,} | {r['ingest_img_s']:,.0f} img/s | {r['reference_img_s']:,.0f} img/s | "
            f"{r['ratio']:.2f}× | {r['cache_only_ratio']:.2f}× | {r['upload_s']:.2f} s ({r['manifest_s']:.2f} s) "
            f"| {r['disk_mib']:.0f} MiB | {r['rss_main_mib']:.0f} / {r['rss_worker_mib']:.0f} MiB |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000], help="archive sizes (images)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--source-px", type=int, default=512, help="side of the JPEGs in the archive")
    parser.add_argument("--image-size", type=int, default=128, help="side of the cached images")
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    for hidden in ("--n", "--archive", "--work"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        if args.n is not None:
            args.n = int(args.n)
        os.sync()  # earlier steps' pending writeback must not land inside this step's timing
        print(json.dumps(STEPS[args.step](args)))
        return
    results = benchmark(args.sizes, args.rounds, args.workers, args.source_px, args.image_size)
    print_table(results, args.workers, args.source_px, args.image_size)


if __name__ == "__main__":
    main()
