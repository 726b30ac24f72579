"""Cohort endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile

from app.auth.deps import Reader, Writer
from app.auth.route import AuthenticatedRoute
from app.cohorts import service
from app.cohorts.repository import COHORTS
from app.cohorts.schemas import CohortList, CohortOut
from app.core.deps import ReadSessionDep, SessionDep, SettingsDep, mark_resource
from app.core.openapi import problem_responses
from app.core.pagination import DEFAULT_LIMIT, Limit

router = APIRouter(prefix="/v1/cohorts", tags=["cohorts"], route_class=AuthenticatedRoute)
CONFIG_EXAMPLES = [
    '{"name": "derm-demo", "preset": "fitzpatrick17k"}',
    '{"name": "site B", "preset": "generic", "image_column": "file", "label_column": "malignant", '
    '"sensitive_attributes": ["sex"], "split": {"mode": "column", "column": "split"}}',
    '{"name": "derm, banded", "preset": "fitzpatrick17k", "patient_id_column": "patient_id", "groupings": '
    '[{"name": "skin_band", "attribute": "skin_type", "groups": {"I-II": ["1", "2"], "III-IV": ["3", "4"], '
    '"V-VI": ["5", "6"]}}]}',
    '{"name": "chest, by scanner", "preset": "dicom", "dicom_tags": ["Manufacturer", "StationName"]}',
    '{"name": "derm, 9 classes", "preset": "fitzpatrick17k", "task": "multiclass", '
    '"label_field": "nine_partition_label", "min_class_count": 5, "other_class": "other"}',
    '{"name": "isic 2019 as shipped", "preset": "isic2019", "task": "multiclass"}',
    '{"name": "chest findings", "preset": "chexpert", "task": "multilabel", "findings": [{"column": "Edema"}, '
    '{"column": "Pleural Effusion", "uncertain_as": "positive"}, {"column": "Atelectasis", "blank_as": "missing"}]}',
]


@router.post("", status_code=202, response_model=CohortOut, summary="Upload a cohort")
def upload_cohort(
    request: Request,
    principal: Writer,
    session: SessionDep,
    settings: SettingsDep,
    archive: Annotated[UploadFile, File(description=".zip or .tar.gz of images and one manifest CSV")],
    config: Annotated[
        str,
        Form(description="JSON cohort config (name, preset, columns, split, image size)", examples=CONFIG_EXAMPLES),
    ],
) -> CohortOut:
    """Validate the archive and manifest now (4xx naming every bad row, column or file); decode the
    images in an ingestion job. Answers 202 with the cohort in ``ingesting``."""
    cohort = service.create_cohort(session, settings, principal, archive.file, archive.size, config)
    mark_resource(request, cohort.id)
    return service.represent(session, cohort)


@router.get("", response_model=CohortList, summary="List cohorts")
def list_cohorts(
    principal: Reader, session: ReadSessionDep, limit: Limit = DEFAULT_LIMIT, cursor: str | None = None
) -> CohortList:
    rows, next_cursor = COHORTS.page(session, principal.organisation_id, limit, cursor)
    return CohortList(items=[service.represent(session, c) for c in rows], next_cursor=next_cursor)


@router.get("/{cohort_id}", response_model=CohortOut, summary="Get a cohort", responses=problem_responses(404))
def get_cohort(cohort_id: str, principal: Reader, session: ReadSessionDep) -> CohortOut:
    return service.represent(session, COHORTS.get_or_404(session, principal.organisation_id, cohort_id))


@router.delete(
    "/{cohort_id}",
    response_model=CohortOut,
    summary="Delete a cohort's images (the record stays)",
    responses=problem_responses(404),
)
def delete_cohort(
    cohort_id: str, request: Request, principal: Writer, session: SessionDep, settings: SettingsDep
) -> CohortOut:
    mark_resource(request, cohort_id)
    cohort = service.delete_cohort(session, settings, principal.organisation_id, cohort_id)
    return service.represent(session, cohort)
