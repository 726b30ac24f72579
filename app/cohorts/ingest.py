"""Ingestion: decode every image of a validated cohort once into its image cache (``cache.py``).

The upload request runs ``archive.open_archive`` and ``manifest.parse_manifest`` (bad uploads are
refused at once; only the images the manifest lists are extracted); the ingestion job then runs
``build_cache``. Bad images fail the job with the bad files listed.

Decoding runs in ``workers`` processes started with ``spawn`` (no inherited locks or threads from a
server process) that die with the process that started them (``app.jobs.lifeline``). Each task is
a chunk of rows; a worker opens the cache's memory map read-write, writes its rows and closes it.
Rows are disjoint, so workers never coordinate. ``items.json`` is written only after every image
decoded, so a cache without it is incomplete; on failure or cancel the caller removes the cache
folder. Nothing is fsynced: readers on this machine share the page cache, a shared filesystem
publishes each worker's rows when it closes the mapping (close-to-open), and a cache lost to a
power cut is rebuilt by the job's retry. (Syncing cost 40 % of throughput per chunk, and once at
the end it also flushes every extracted image under ext4's ordered mode.)
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import cast

from app.cohorts.cache import create_image_store, write_items
from app.cohorts.groupings import Grouping
from app.cohorts.image_limits import ImageLimits
from app.cohorts.images import decode_into_store
from app.cohorts.manifest import ParsedManifest
from app.core.error_list import ErrorList
from app.jobs.lifeline import die_with_parent
from app.settings import get_settings

MAX_CHUNK = 256
Chunk = list[tuple[int, str]]


class IngestCancelled(Exception):
    """``should_cancel`` returned true; the cache is incomplete and should be removed."""


def build_cache(
    manifest: ParsedManifest,
    root: Path,
    cache_dir: Path,
    size: int,
    channels: int,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
    should_cancel: Callable[[], bool] | None = None,
    *,
    limits: ImageLimits | None = None,
    groupings: Sequence[Grouping] = (),
) -> None:
    """Decode every manifest item (paths relative to ``root``) into a new cache in ``cache_dir``.

    ``progress(done, total)`` is called after each chunk. Raises ``InputError`` (422) listing the files
    that failed to decode (capped, see ``app.core.error_list``), or ``IngestCancelled``.
    ``limits`` default to the settings'; ``groupings`` (the cohort's, checked at upload) are kept with
    the cache so every reader derives their attributes.
    """
    items = manifest.items
    n = len(items)
    limits = limits or ImageLimits.from_settings(get_settings())
    create_image_store(cache_dir, n, size, channels)
    decode = partial(decode_into_store, cache_dir, n, size, channels, limits)
    step = max(1, min(MAX_CHUNK, -(-n // (max(workers, 1) * 8))))
    rows = [(i, str(root / item.image)) for i, item in enumerate(items)]
    chunks = [rows[s : s + step] for s in range(0, n, step)]

    errors: list[tuple[int, str]] = []
    done = 0
    with closing(_decode_chunks(decode, chunks, workers, should_cancel or (lambda: False))) as results:
        for count, chunk_errors in results:
            errors.extend(chunk_errors)
            done += count
            if progress:
                progress(done, n)
    if errors:
        found = ErrorList()
        found.extend({"row": items[i].row, "file": items[i].image, "message": m} for i, m in sorted(errors))
        raise found.error(f"{len(errors)} image(s) could not be decoded")
    write_items(
        cache_dir,
        size=size,
        channels=channels,
        item_ids=[item.item_id for item in items],
        labels=cast(list[int] | list[tuple[int, ...]], [item.label for item in items]),
        split=[item.split for item in items],
        patient_ids=[item.patient_id for item in items],
        attributes=manifest.attribute_columns(),
        groupings=groupings,
        task=manifest.task,
    )


def _decode_chunks(
    decode: Callable[[Chunk], list[tuple[int, str]]],
    chunks: Sequence[Chunk],
    workers: int,
    should_cancel: Callable[[], bool],
) -> Generator[tuple[int, list[tuple[int, str]]], None, None]:
    """``(rows done, errors)`` per chunk, in this process or a spawn pool; checks for cancel between."""
    if workers <= 1:
        for chunk in chunks:
            if should_cancel():
                raise IngestCancelled()
            yield len(chunk), decode(chunk)
        return
    executor = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=die_with_parent,  # the pool's processes are started by this thread, in submit()
        initargs=(os.getpid(),),
    )
    try:
        futures = {executor.submit(decode, chunk): len(chunk) for chunk in chunks}
        for future in as_completed(futures):
            if should_cancel():
                raise IngestCancelled()
            yield futures[future], future.result()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
