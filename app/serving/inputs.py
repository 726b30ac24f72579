"""Reading a prediction request: multipart (``images`` repeatable, optional ``demographics`` JSON list
aligned with them) or JSON (``{"images": [{"data": base64, "demographics": {...}}]}``).

The batch limit is enforced while parsing, before any image is decoded (413). Nothing here decodes
pixels; that is ``preprocess``'s job, with the model's own settings.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from fastapi import Request
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from app.core.error_list import capped
from app.core.errors import InputError
from app.serving.schemas import Demographics, PredictJson

_DEMOGRAPHICS_LIST = TypeAdapter(list[Demographics | None])


@dataclass(frozen=True)
class ImageInput:
    name: str
    data: bytes
    demographics: dict[str, str | None] | None


async def read_predict_request(request: Request, max_batch: int) -> list[ImageInput]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return await _read_multipart(request, max_batch)
    if content_type == "application/json":
        return _read_json(await request.body(), max_batch)
    raise InputError(
        f"unsupported content type {content_type or '(none)'!r}: send multipart/form-data with repeatable "
        '\'images\' fields, or application/json with {"images": [{"data": <base64>}]}',
        status=415,
    )


def _too_many(max_batch: int, n: int | None = None) -> InputError:
    count = f"{n} images" if n is not None else "more images than that"
    return InputError(
        f"at most {max_batch} images per prediction request (FAIRAUDIT_MAX_PREDICT_BATCH); got {count}", status=413
    )


async def _read_multipart(request: Request, max_batch: int) -> list[ImageInput]:
    try:
        form = await request.form(max_files=max_batch, max_fields=8)
    except HTTPException as exc:  # Starlette's parser reports limits and malformed bodies this way
        if exc.status_code != 400:  # e.g. 413 from app.core.body_limit
            raise
        if str(exc.detail).startswith("Too many files"):
            raise _too_many(max_batch) from None
        raise InputError(f"malformed multipart body: {exc.detail}", status=400) from None
    try:
        unknown = sorted(set(form.keys()) - {"images", "demographics"})
        if unknown:
            raise InputError(f"unknown multipart fields {unknown}: send 'images' (repeatable) and 'demographics'")
        parts = form.getlist("images")
        files = [f for f in parts if isinstance(f, UploadFile)]
        if not parts:
            raise InputError("no images: send one or more multipart fields named 'images'")
        if len(files) != len(parts):
            raise InputError("each 'images' field must be a file part (with a filename)")
        demographics = _demographics_field(form.get("demographics"), len(files))
        return [
            ImageInput(name=f.filename or f"image {i}", data=await f.read(), demographics=d)
            for i, (f, d) in enumerate(zip(files, demographics, strict=True))
        ]
    finally:
        await form.close()


def _demographics_field(raw: object, n: int) -> list[dict[str, str | None] | None]:
    if raw is None:
        return [None] * n
    if not isinstance(raw, str):
        raise InputError("'demographics' must be a text field holding a JSON list, not a file")
    try:
        items = _DEMOGRAPHICS_LIST.validate_json(raw)
    except ValidationError as exc:
        raise InputError("'demographics' is not a JSON list of objects of group labels", _errors(exc)) from None
    if len(items) != n:
        raise InputError(f"'demographics' has {len(items)} entries for {n} images; send one per image, in order")
    return items


def _read_json(body: bytes, max_batch: int) -> list[ImageInput]:
    try:
        parsed = PredictJson.model_validate_json(body)
    except ValidationError as exc:
        raise InputError('the JSON body does not match {"images": [{"data": <base64>}]}', _errors(exc)) from None
    if len(parsed.images) > max_batch:
        raise _too_many(max_batch, len(parsed.images))
    out = []
    for i, image in enumerate(parsed.images):
        try:
            data = base64.b64decode(image.data, validate=True)
        except (binascii.Error, ValueError):
            raise InputError(
                "an image is not valid base64", [{"image": i, "field": f"images.{i}.data", "message": "invalid base64"}]
            ) from None
        out.append(ImageInput(name=image.name or f"image {i}", data=data, demographics=image.demographics))
    return out


def _errors(exc: ValidationError) -> list[dict[str, str]]:
    return capped({"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors())
