"""Model registry, prediction, outcomes and monitoring endpoints.

``{model_ref}`` is a model version id (``mdl_…``) or an alias of the caller's organisation
(``production``); see ``registry`` for why the two cannot be confused. Every model lookup is scoped to
the caller's organisation, so another organisation's ids and aliases answer 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.auth.deps import Predictor, Reader
from app.auth.route import AuthenticatedRoute, Handler, authorise, required_permissions
from app.core.deps import ReadSessionDep, SessionDep, SettingsDep, mark_resource
from app.core.errors import InputError
from app.core.openapi import problem_responses
from app.core.pagination import DEFAULT_LIMIT, Limit
from app.modelpkg.manifest import MANIFEST_FILE
from app.serving import registry, service
from app.serving.download import iter_and_close, model_archive, model_file
from app.serving.inputs import ImageInput, read_predict_request
from app.serving.models import ModelVersion
from app.serving.monitoring import Window, monitor
from app.serving.outputs import AnyRecord
from app.serving.registry import MODEL_REF
from app.serving.runtime import ModelCache, ModelFiles, model_cache
from app.serving.schemas import (
    AnyMonitoringOut,
    AnyPredictionRecord,
    AnyPredictResponse,
    ModelList,
    ModelOut,
    MonitoringOut,
    MulticlassPredictResponse,
    MultilabelPredictResponse,
    OutcomeIn,
    PredictResponse,
)

router = APIRouter(tags=["models"], route_class=AuthenticatedRoute)
CacheDep = Annotated[ModelCache, Depends(model_cache)]
NOT_YET = {409: "the version's training job is still queued or running"}
TAMPERED = {409: "the version's training job is still running, or its files no longer match their SHA-256"}
# A 1×1 grey PNG: what an image looks like in a JSON prediction request.
_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNoAAAAggCBd81ytgAAAABJRU5ErkJggg=="
_DEMOGRAPHICS = {"type": "object", "additionalProperties": {"type": ["string", "null"]}}
PREDICT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["images"],
                    "properties": {
                        "images": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "demographics": {
                            "type": "string",
                            "description": "JSON list with one object (or null) per image, in order",
                            "examples": ['[{"sex": "female", "age_group": "60-79"}]'],
                        },
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["images"],
                    "properties": {
                        "images": {
                            "type": "array",
                            "minItems": 1,
                            "items": {
                                "type": "object",
                                "required": ["data"],
                                "properties": {
                                    "data": {"type": "string", "contentEncoding": "base64"},
                                    "name": {"type": "string"},
                                    "demographics": _DEMOGRAPHICS,
                                },
                            },
                        }
                    },
                    "examples": [
                        {"images": [{"data": _PNG, "name": "lesion-001.png", "demographics": {"sex": "female"}}]}
                    ],
                }
            },
        },
    }
}


async def predict_inputs(request: Request) -> list[ImageInput]:
    """The prediction body, read after the key check (``AuthenticatedRoute``) and with no database
    connection open while it streams in."""
    return await read_predict_request(request, request.app.state.settings.max_predict_batch)


def _model(session: SessionDep, organisation_id: str, model_ref: str) -> ModelVersion:
    return registry.resolve(session, organisation_id, model_ref)[0]


@router.get("/v1/models", response_model=ModelList, summary="List model versions")
def list_models(
    principal: Reader, session: ReadSessionDep, limit: Limit = DEFAULT_LIMIT, cursor: str | None = None
) -> ModelList:
    rows, next_cursor = registry.MODELS.page(session, principal.organisation_id, limit, cursor)
    return ModelList(items=service.represent(session, principal.organisation_id, rows), next_cursor=next_cursor)


@router.get(
    "/v1/models/{model_ref}",
    response_model=ModelOut,
    summary="Get a model version",
    description=MODEL_REF,
    responses=problem_responses(404, 409, notes=NOT_YET),
)
def get_model(model_ref: str, principal: Reader, session: ReadSessionDep) -> ModelOut:
    (out,) = service.represent(
        session, principal.organisation_id, [_model(session, principal.organisation_id, model_ref)]
    )
    return out


@router.get(
    "/v1/models/{model_ref}/onnx",
    response_class=Response,
    summary="Download a model version's files",
    responses={
        200: {"content": {"application/zip": {}, "application/octet-stream": {}}},
        **problem_responses(404, 409, notes=TAMPERED),
    },
)
def download_model(
    model_ref: str,
    principal: Reader,
    session: ReadSessionDep,
    settings: SettingsDep,
    file: Annotated[str | None, Query(description="one file of the folder, e.g. stage_0.onnx or model.json")] = None,
) -> Response:
    """The model folder (ONNX stage graphs, full graph, model.json) as a zip, or one file of it;
    every file is checked against its recorded SHA-256 first (409 if it changed)."""
    model = _model(session, principal.organisation_id, model_ref)
    files = ModelFiles.of(settings, model)
    if file is not None:
        media = "application/json" if file == MANIFEST_FILE else "application/octet-stream"
        headers = {"Content-Disposition": f'attachment; filename="{file}"'}
        return Response(model_file(files, file), media_type=media, headers=headers)
    headers = {"Content-Disposition": f'attachment; filename="{model.id}.zip"'}
    return StreamingResponse(
        iter_and_close(model_archive(files, model.id)), media_type="application/zip", headers=headers
    )


class PredictRoute(AuthenticatedRoute):
    """The prediction route, the hot path: FastAPI still documents it from ``predict``'s signature, but
    a request runs the same steps without FastAPI's dependency resolution and response re-validation,
    which took most of the per-request CPU beyond decoding and inference. Same order and guarantees:
    key and role from the headers, then the body, then ``predict``; errors go to the app's problem
    handlers as before. ``predict``'s return value is already a validated response model, so it is
    serialised as is (by alias, as FastAPI does)."""

    def get_route_handler(self) -> Handler:
        permissions = required_permissions(self.dependant)
        assert permissions is not None  # Predictor

        async def lean(request: Request) -> Response:
            principal = await authorise(request, permissions)
            model_ref: str = request.path_params["model_ref"]
            inputs = await predict_inputs(request)
            cache = await model_cache(request)
            out = await predict(model_ref, request, inputs, principal, request.app.state.settings, cache)
            return Response(out.model_dump_json(by_alias=True), media_type="application/json")

        return lean


async def predict(
    model_ref: str,
    request: Request,
    inputs: Annotated[list[ImageInput], Depends(predict_inputs)],
    principal: Predictor,
    settings: SettingsDep,
    cache: CacheDep,
) -> PredictResponse | MulticlassPredictResponse | MultilabelPredictResponse:
    """Early-exit prediction for one or more images (PNG, JPEG or DICOM) with the model's own
    preprocessing; each result is stored with its demographics for monitoring. A binary model answers
    each image's probability and 0/1 label; a multiclass model (``task`` multiclass) every class's
    probability and the predicted class; a multilabel model (``task`` multilabel) each finding's
    probability and decision (docs/api.md)."""
    mark_resource(request, model_ref)
    state = request.app.state
    response = await run_in_threadpool(
        service.predict,
        state.served_models,
        state.row_writer,
        settings,
        cache,
        principal.organisation_id,
        model_ref,
        inputs,
    )
    state.telemetry.count_predictions(
        principal.organisation_id, response.model_id, (p.exit_index for p in response.predictions)
    )
    state.activity.touch()
    return response


router.add_api_route(
    "/v1/models/{model_ref}/predict",
    predict,
    methods=["POST"],
    route_class_override=PredictRoute,
    response_model=AnyPredictResponse,
    openapi_extra=PREDICT_BODY,
    summary="Predict with early exit",
    description=MODEL_REF,
    responses=problem_responses(404, 409, 415, notes=TAMPERED),
)


@router.get(
    "/v1/models/{model_ref}/monitoring",
    response_model=AnyMonitoringOut,
    summary="Monitor a model version's served predictions",
    description=MODEL_REF,
    responses=problem_responses(404, 409, notes=NOT_YET),
)
def monitoring(
    model_ref: str,
    principal: Reader,
    session: ReadSessionDep,
    settings: SettingsDep,
    days: Annotated[int | None, Query(ge=1, le=3660, description="only the last N UTC days (today included)")] = None,
    last_outcomes: Annotated[
        int | None, Query(ge=1, le=10_000_000, description="only the model's last K outcomes")
    ] = None,
) -> MonitoringOut:
    """Subgroup metrics (with intervals) of the window's outcomes, the demographic mix and exit counts
    of its predictions, and per-group score and exit-rate drift against the model's audit; computed
    from aggregates kept as predictions and outcomes arrive."""
    if days is not None and last_outcomes is not None:
        raise InputError(
            "give days or last_outcomes, not both",
            [{"field": "query.last_outcomes", "message": "a window is the last days or the last outcomes"}],
        )
    model = _model(session, principal.organisation_id, model_ref)
    return monitor(session, settings, principal.organisation_id, model, Window(days, last_outcomes))


@router.post(
    "/v1/predictions/{prediction_id}/outcome",
    response_model=AnyPredictionRecord,
    summary="Record the ground truth of a prediction",
    responses=problem_responses(
        404, 409, notes={409: "the prediction's model's model.json no longer matches its SHA-256"}
    ),
)
def post_outcome(
    prediction_id: str,
    body: OutcomeIn,
    principal: Predictor,
    session: SessionDep,
    request: Request,
    background: BackgroundTasks,
    settings: SettingsDep,
) -> AnyRecord:
    """Record (or correct) the ground truth of a served prediction: 0 or 1 for a binary model, the
    true class's name for a multiclass model, findings {name: 0, 1 or null} for a multilabel model
    (a finding left out is unknown). A value the model does not know is a 422 that names it."""
    mark_resource(request, prediction_id)
    record = service.record_outcome(session, settings, principal.organisation_id, prediction_id, body)
    background.add_task(request.app.state.activity.touch)  # after the commit: alert rules then see the outcome
    return record
