"""Ingestion: decode every image of a validated cohort once into its image cache (``cache.py``).

The upload request runs ``archive.open_archive`` and ``manifest.parse_manifest`` (bad uploads are
refused at once; the listed images' headers are read from the archive, nothing is extracted) and
keeps the checked archive; the ingestion job then runs ``build_cache`` on it, decoding the images
straight from the archive. Bad images fail the job with the bad files listed.

Decoding runs in ``workers`` processes started with ``spawn`` (no inherited locks or threads from a
server process) that die with the process that started them (``app.jobs.lifeline``). Each task is
a chunk of rows; a worker opens the cache's memory map read-write, writes its rows and closes it.
Rows are disjoint, so workers never coordinate. Where the images come from:

- zip: a task names its rows' members; each worker opens the zip once (its central directory
  makes every member seekable; ``images.hold_zip``) and reads only those, stored members in place
  (``members.read_stored``).
- tar.gz: a gzip stream can only be read in order, from the start, so this process streams it once
  and hands each chunk's members to the workers as bytes (chunks also bounded to ``CHUNK_BYTES``,
  at most ``2 × workers`` in flight: memory stays flat). Letting every worker inflate the whole
  stream and keep its share would cost ``workers`` times the inflating, and rewriting the tar as a
  zip at upload would double the disk used. A member over ``members.SPOOL_BYTES`` (a large DICOM)
  is decoded in this process rather than copied between processes.
- a folder of files (tests and tools that have one). ``items.json`` is written only after every image
decoded, so a cache without it is incomplete; on failure or cancel the caller removes the cache
folder. Nothing is fsynced: readers on this machine share the page cache, a shared filesystem
publishes each worker's rows when it closes the mapping (close-to-open), and a cache lost to a
power cut is rebuilt by the job's retry. (Syncing cost 40 % of throughput per chunk, and once at
the end it also flushes every extracted image under ext4's ordered mode.)
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import closing
from functools import partial
from itertools import islice
from pathlib import Path
from typing import IO, cast

from app.cohorts.cache import write_items
from app.cohorts.groupings import Grouping
from app.cohorts.image_limits import ImageLimits
from app.cohorts.image_store import create_image_store
from app.cohorts.images import decode_into_store, hold_zip, start_decoder
from app.cohorts.manifest import ManifestItem, ParsedManifest
from app.cohorts.members import SPOOL_BYTES, archive_kind, read_tar
from app.core.error_list import ErrorList
from app.settings import get_settings

MAX_CHUNK = 256
CHUNK_BYTES = 32 << 20  # of member bytes in one tar.gz task
Chunk = list[tuple[int, str | bytes]]


class IngestCancelled(Exception):
    """``should_cancel`` returned true; the cache is incomplete and should be removed."""


def build_cache(
    manifest: ParsedManifest,
    source: Path,
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
    """Decode every manifest item into a new cache in ``cache_dir``; ``source`` is the stored zip or
    tar.gz archive (item paths from its top) or a folder (paths relative to it).

    ``progress(done, total)`` is called after each chunk. Raises ``InputError`` (422) listing the files
    that failed to decode (capped, see ``app.core.error_list``), or ``IngestCancelled``.
    ``limits`` default to the settings'; ``groupings`` (the cohort's, checked at upload) are kept with
    the cache so every reader derives their attributes.
    """
    items = manifest.items
    n = len(items)
    limits = limits or ImageLimits.from_settings(get_settings())
    create_image_store(cache_dir, n, size, channels)
    step = max(1, min(MAX_CHUNK, -(-n // (max(workers, 1) * 8))))
    errors: list[tuple[int, str]] = []
    chunks: Iterator[Chunk]
    tar = _is_tar(source)
    if tar:
        decode = partial(decode_into_store, cache_dir, n, size, channels, limits, None)
        chunks = _tar_chunks(source, items, step, cache_dir, decode, errors)
    else:
        decode = partial(decode_into_store, cache_dir, n, size, channels, limits, source)
        rows: Chunk = [(i, item.image) for i, item in enumerate(items)]
        chunks = (rows[s : s + step] for s in range(0, n, step))

    done = 0
    decoding = _decode_chunks(
        decode, chunks, workers, should_cancel or (lambda: False), None if tar else source, cache_dir
    )
    with closing(decoding) as results:
        for count, chunk_errors in results:
            errors.extend(chunk_errors)
            done += count
            if progress:
                progress(done, n)
    if progress and done < n:  # rows of large tar.gz members, decoded in this process
        progress(n, n)
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


def _is_tar(source: Path) -> bool:
    """By the name the upload gave it, else by content; never opens a ``.zip`` (the workers do)."""
    if source.is_dir() or source.name.endswith(".zip"):
        return False
    return source.name.endswith(".tar.gz") or archive_kind(source) == "tar.gz"


def _tar_chunks(
    archive: Path,
    items: Sequence[ManifestItem],
    step: int,
    spill_dir: Path,
    decode_here: Callable[[Sequence[tuple[int, str | bytes | IO[bytes]]]], list[tuple[int, str]]],
    errors: list[tuple[int, str]],
) -> Iterator[Chunk]:
    """Chunks of ``(row, bytes)`` read in one pass over the stream (module docstring). A member over
    ``SPOOL_BYTES`` is decoded in this process by ``decode_here`` as it is read, its errors added to
    ``errors`` (its rows are reported done at the end). A listed member the stream lacks is an error."""
    rows: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        rows.setdefault(item.image, []).append(i)
    chunk: Chunk = []
    held = 0
    for rel, member in read_tar(archive, rows.keys(), spill_dir):
        rows_of_member = rows.pop(rel)
        size = member.seek(0, os.SEEK_END)
        member.seek(0)
        if size > SPOOL_BYTES:  # too large to copy between processes
            for row in rows_of_member:
                errors.extend(decode_here([(row, member)]))
            continue
        data = member.read()
        chunk.extend((row, data) for row in rows_of_member)
        held += size
        if len(chunk) >= step or held >= CHUNK_BYTES:
            yield chunk
            chunk, held = [], 0
    if chunk:
        yield chunk
    errors.extend((row, "not found in the archive") for left in rows.values() for row in left)


def _decode_chunks(
    decode: Callable[[Chunk], list[tuple[int, str]]],
    chunks: Iterator[Chunk],
    workers: int,
    should_cancel: Callable[[], bool],
    source: Path | None,
    spill_dir: Path,
) -> Generator[tuple[int, list[tuple[int, str]]], None, None]:
    """``(rows done, errors)`` per chunk, in this process or a spawn pool with at most ``2 × workers``
    chunks in flight; checks for cancel between. A zip ``source`` is opened once per process
    (``images.hold_zip``)."""
    if workers <= 1:
        with hold_zip(source, spill_dir):
            for chunk in chunks:
                if should_cancel():
                    raise IngestCancelled()
                yield len(chunk), decode(chunk)
        return
    executor = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=start_decoder,  # the pool's processes are started by this thread, in submit()
        initargs=(os.getpid(), source, spill_dir),
    )
    try:
        pending: dict[Future[list[tuple[int, str]]], int] = {}
        for chunk in islice(chunks, 2 * workers):
            pending[executor.submit(decode, chunk)] = len(chunk)
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                if should_cancel():
                    raise IngestCancelled()
                yield pending.pop(future), future.result()
                for chunk in islice(chunks, 1):
                    pending[executor.submit(decode, chunk)] = len(chunk)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
