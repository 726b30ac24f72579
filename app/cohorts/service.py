"""Cohort use cases: upload (validate everything before answering), read, delete. Never commits.

Every listed image's header is checked before the upload is accepted (``image_check``), so a
truncated, unsupported or oversized file is refused here rather than failing the ingestion job.
The images are read from the archive for that; nothing is extracted: the checked archive is kept
as it came (``storage``) and the ingestion job decodes from it.

Upload order matters for "nothing left behind": files are written under a fresh cohort folder whose
removal is registered as a rollback hook first, so any rejection — at the size check, in the
archive, in the manifest, or at commit — removes them together with the rows.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from sqlalchemy.orm import Session

from app.auth.service import Principal
from app.cohorts import storage
from app.cohorts.archive import ArchiveLimits, open_archive
from app.cohorts.config import CohortConfig, parse_config
from app.cohorts.image_check import check_listed_images
from app.cohorts.image_limits import ImageLimits
from app.cohorts.manifest import ParsedManifest, parse_manifest
from app.cohorts.members import archive_kind
from app.cohorts.models import Cohort, CohortItem
from app.cohorts.repository import COHORTS
from app.cohorts.schemas import CohortOut
from app.cohorts.upload import remove_tree, save_stream, too_large
from app.core.errors import ConflictError
from app.db.base import new_id, utcnow
from app.db.engine import on_rollback
from app.db.live_work import hold_until_settled
from app.jobs import handlers, state
from app.jobs.models import TERMINAL_STATUSES, Job
from app.settings import Settings

handlers.register("ingest", "app.cohorts.ingestion_job:run_ingestion")  # the jobs ``create_cohort`` queues


def create_cohort(
    session: Session,
    settings: Settings,
    principal: Principal,
    archive: BinaryIO,
    declared_size: int | None,
    raw_config: str,
) -> Cohort:
    config = parse_config(raw_config)
    if declared_size is not None and declared_size > settings.max_upload_bytes:
        raise too_large(settings.max_upload_bytes)
    cohort_id = new_id("coh")
    folder = storage.cohort_dir(settings, cohort_id)
    on_rollback(session, lambda: remove_tree(folder))
    hold_until_settled(session, folder)  # not an orphan while this request writes it
    try:
        storage.create_cohort_dir(settings, cohort_id)
        upload = folder / "upload.bin"
        save_stream(archive, upload, settings.max_upload_bytes)
        kind = archive_kind(upload)  # unknown content: ``open_archive`` refuses it
        stored = upload.rename(storage.archive_file(settings, cohort_id, kind)) if kind else upload
        scratch = storage.manifest_dir(settings, cohort_id)
        with open_archive(stored, scratch, ArchiveLimits.from_settings(settings), config.manifest_pair()) as checked:
            manifest = parse_manifest(
                checked.manifest,
                config,
                files=checked.files,
                salt=cohort_id.encode(),
                settings=settings,
                read_images=checked.read,  # only the images the rows list are read
                companion=checked.companion,
            )
            check_listed_images(checked.read, manifest.items, ImageLimits.from_settings(settings))
        remove_tree(scratch)
    except BaseException:
        remove_tree(folder)
        raise
    return _register(session, settings, principal, cohort_id, config, manifest, image_prefix=checked.prefix)


def _register(
    session: Session,
    settings: Settings,
    principal: Principal,
    cohort_id: str,
    config: CohortConfig,
    manifest: ParsedManifest,
    image_prefix: str,
) -> Cohort:
    cohort = Cohort(
        id=cohort_id,
        organisation_id=principal.organisation_id,
        name=config.name,
        preset=config.preset,
        config=config.model_dump(mode="json"),
        status="ingesting",
        n_items=len(manifest.items),
        image_size=config.image_size,
        channels=config.channels,
        attributes=list(manifest.attribute_names),
        task={**manifest.task.model_dump(mode="json"), "merged": manifest.merged},
        errors=[],
        warnings=list(manifest.warnings),
        summary=None,
    )
    session.add(cohort)
    session.flush()
    session.add_all(
        CohortItem(
            cohort_id=cohort_id,
            position=i,
            item_id=item.item_id,
            image_path=image_prefix + item.image,
            label=item.label if isinstance(item.label, int) else int(1 in item.label),
            findings=None if isinstance(item.label, int) else list(item.label),
            split=item.split,
            patient_key=item.patient_id,
            attributes=item.attributes,
        )
        for i, item in enumerate(manifest.items)
    )
    job = state.enqueue(
        session,
        organisation_id=principal.organisation_id,
        kind="ingest",
        config={"cohort_id": cohort_id},
        cohort_id=cohort_id,
        max_attempts=settings.max_attempts,
    )
    cohort.ingest_job_id = job.id
    return cohort


def require_ready(session: Session, organisation_id: str, cohort_id: str) -> Cohort:
    cohort = COHORTS.get_or_404(session, organisation_id, cohort_id)
    status = represent(session, cohort).status
    if status != "ready":
        raise ConflictError(f"cohort {cohort_id} is {status}, not ready")
    return cohort


def delete_cohort(session: Session, settings: Settings, organisation_id: str, cohort_id: str) -> Cohort:
    """Remove images and cache (retention); the row stays, marked deleted, for the audit trail."""
    cohort = COHORTS.get_or_404(session, organisation_id, cohort_id)
    job = session.get(Job, cohort.ingest_job_id) if cohort.ingest_job_id else None
    if job is not None and job.status not in TERMINAL_STATUSES:
        state.request_cancel(session, job)
    cohort.status, cohort.deleted_at, cohort.summary = "deleted", utcnow(), None
    session.query(CohortItem).filter(CohortItem.cohort_id == cohort_id).delete()
    session.flush()
    storage.remove_cohort_files(settings, cohort_id)
    return cohort


_TASK_FIELDS = ("task", "classes")  # CohortOut's view of ``Cohort.task``


def represent(session: Session, cohort: Cohort) -> CohortOut:
    """The API view. While ingesting, status and progress come from the ingestion job, so a job that
    failed or was cancelled (even by a crash the cohort never heard of) shows as ``failed``."""
    status, progress, errors = cohort.status, cohort.progress, list(cohort.errors)
    job = session.get(Job, cohort.ingest_job_id) if cohort.ingest_job_id else None
    if status == "ingesting" and job is not None:
        progress = float(job.progress.get("fraction", 0.0))
        if job.status in ("failed", "cancelled"):
            status = "failed"
            errors = errors or [{"message": job.error or f"ingestion was {job.status}"}]
    data: dict[str, Any] = {name: getattr(cohort, name) for name in CohortOut.model_fields if name not in _TASK_FIELDS}
    data.update(
        status=status, progress=progress, errors=errors, task=cohort.task["kind"], classes=cohort.task["classes"]
    )
    return CohortOut(**data)
