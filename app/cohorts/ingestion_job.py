"""The ingestion job: decode a validated cohort's images into its cache, then mark it ready.

Runs in a job process and decodes straight from the archive the upload kept (``ingest``). Once the
cache is complete and durable the archive is deleted, the listed images kept de-identified first
with ``keep_sources`` (``sources.py``): patient identifiers in DICOM files do not outlive ingestion.
A retry after a crash keeps a complete cache (``items.json`` is written last) since the archive may
already be gone, and otherwise decodes again from the archive from scratch (the cache is rebuilt,
never patched). A failure or cancel removes the cohort's files — archive and partial cache — and
marks the cohort failed with its errors.
"""

from __future__ import annotations

import shutil
from typing import Any, cast

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.cohorts import storage
from app.cohorts.cache import is_complete, sync_cache
from app.cohorts.groupings import derive, parse_groupings
from app.cohorts.image_limits import ImageLimits
from app.cohorts.ingest import IngestCancelled, build_cache
from app.cohorts.manifest import ManifestItem, ParsedManifest
from app.cohorts.models import Cohort, CohortItem
from app.cohorts.sources import release_sources
from app.cohorts.summary import summarize
from app.core.errors import InputError
from app.core.server_paths import hide_server_paths
from app.db.engine import transaction
from app.jobs.context import Cancelled, Completion, JobContext
from app.modelpkg.task import Task


def _load(ctx: JobContext) -> tuple[Cohort, ParsedManifest]:
    with ctx.session_factory() as session:
        cohort = session.get(Cohort, ctx.config["cohort_id"])
        if cohort is None or cohort.deleted_at is not None:
            raise InputError(f"cohort {ctx.config['cohort_id']} no longer exists")
        rows = session.scalars(
            select(CohortItem).where(CohortItem.cohort_id == cohort.id).order_by(CohortItem.position)
        ).all()
        items = [
            ManifestItem(
                item_id=r.item_id,
                image=r.image_path,
                label=r.label if r.findings is None else tuple(r.findings),
                patient_id=r.patient_key,
                split=r.split,
                attributes=dict(r.attributes),
                row=r.position + 2,
            )
            for r in rows
        ]
        session.expunge(cohort)
    stored = cohort.task
    task = Task(kind=stored["kind"], classes=stored["classes"])
    parsed = ParsedManifest(
        items=items, attribute_names=list(cohort.attributes), task=task, merged=stored.get("merged", {})
    )
    return cohort, parsed


def run_ingestion(ctx: JobContext) -> Completion:
    cohort, manifest = _load(ctx)
    cache = storage.cache_dir(ctx.settings, cohort.id)
    archive = storage.stored_archive(ctx.settings, cohort.id)
    limits = ImageLimits.from_settings(ctx.settings)
    groupings = parse_groupings(cohort.config.get("groupings"))
    total = len(manifest.items)

    def progress(done: int, _total: int) -> None:
        ctx.progress({"done": done, "total": total, "fraction": done / total if total else 1.0})

    try:
        if not is_complete(cache):
            shutil.rmtree(cache, ignore_errors=True)
            if archive is None:
                raise InputError("the uploaded archive is gone and the image cache is incomplete")
            build_cache(
                manifest,
                archive,
                cache,
                size=cohort.image_size,
                channels=cohort.channels,
                progress=progress,
                workers=ctx.settings.ingest_workers,
                should_cancel=ctx.should_cancel,
                limits=limits,
                groupings=groupings,
            )
            sync_cache(cache)
        release_sources(
            archive,
            storage.files_dir(ctx.settings, cohort.id),
            [item.image for item in manifest.items],
            keep=bool(cohort.config.get("keep_sources", False)),
            uid_salt=cohort.id,
            limits=limits,
        )
    except (IngestCancelled, Cancelled):
        storage.remove_cohort_files(ctx.settings, cohort.id)
        raise Cancelled() from None
    except Exception as exc:  # the job fails for good (no retry): nothing of the upload is kept
        storage.remove_cohort_files(ctx.settings, cohort.id)
        message = hide_server_paths(str(exc), ctx.settings) or type(exc).__name__  # clients read it
        errors = exc.errors if isinstance(exc, InputError) else [{"message": message}]
        _mark_failed(ctx, cohort.id, errors)
        raise
    except BaseException:  # the process is being stopped: a retry needs the originals, not a partial cache
        if not is_complete(cache):
            shutil.rmtree(cache, ignore_errors=True)
        raise
    columns = manifest.attribute_columns()
    derived = derive({k: _column(v) for k, v in columns.items()}, groupings)
    summary = summarize(
        cast(list[int] | list[tuple[int, ...]], [i.label for i in manifest.items]),
        [i.split for i in manifest.items],
        columns,
        min_count=ctx.settings.min_group_count,
        derived={g.name: list(derived[g.name]) for g in groupings if g.name in derived},
        task=manifest.task,
        merged=manifest.merged,
    )

    def register(session: Session) -> dict[str, Any]:
        row = session.get(Cohort, cohort.id)
        if row is None or row.deleted_at is not None:
            raise InputError(f"cohort {cohort.id} was deleted during ingestion")
        row.status, row.progress, row.summary = "ready", 1.0, summary
        return {"cohort_id": cohort.id}

    return Completion(result={"items": total}, register=register)


def _column(values: list[str | None]) -> np.ndarray:
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column


def _mark_failed(ctx: JobContext, cohort_id: str, errors: list[dict[str, Any]]) -> None:
    with transaction(ctx.session_factory) as session:
        row = session.get(Cohort, cohort_id)
        if row is not None and row.deleted_at is None:
            row.status, row.errors = "failed", errors
