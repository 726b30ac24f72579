"""Reading a prediction request: multipart (``images`` repeatable, optional ``demographics`` JSON list
aligned with them) or JSON (``{"images": [{"data": base64, "demographics": {...}}]}``).

The batch limit is enforced while parsing, before any image is decoded (413). Nothing here decodes
pixels; that is ``preprocess``'s job, with the model's own settings.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request
from pydantic import TypeAdapter, ValidationError
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from app.core.error_list import capped
from app.core.errors import InputError
from app.serving.schemas import Demographics, PredictJson

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

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


FIELD_MAX_BYTES = 1024 * 1024  # a text part ('demographics'), as Starlette's form parser allows
MAX_TEXT_FIELDS = 8


class _Malformed(Exception):
    """A multipart body this parser refuses; the message is the client's (400, or 413 for the batch)."""


class _TooManyFiles(_Malformed):
    pass


class _Parts:
    """``python-multipart``'s streaming parser, its parts collected in memory: (name, filename or None,
    bytes). Starlette's form parser spools every file part to a temporary file through the threadpool
    (a hop per chunk); a prediction's images are read into memory next anyway, and the body is already
    capped (``FAIRAUDIT_MAX_REQUEST_BYTES``). Counts are checked as each part's headers arrive, before
    its data: at most ``max_files`` file parts and ``MAX_TEXT_FIELDS`` text parts."""

    def __init__(self, max_files: int) -> None:
        self.max_files = max_files
        self.parts: list[tuple[str, str | None, bytearray]] = []
        self._files = self._fields = 0
        self._header_name, self._header_value, self._disposition = b"", b"", b""

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._field,
            "on_header_value": self._value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
        }

    def _begin(self) -> None:
        self._disposition = b""

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise _Malformed('The Content-Disposition header field "name" must be provided.')
        name = options[b"name"].decode("utf-8", "replace")
        filename = options[b"filename"].decode("utf-8", "replace") if b"filename" in options else None
        if filename is not None:
            self._files += 1
            if self._files > self.max_files:
                raise _TooManyFiles()
        else:
            self._fields += 1
            if self._fields > MAX_TEXT_FIELDS:
                raise _Malformed(f"Too many fields. Maximum number of fields is {MAX_TEXT_FIELDS}.")
        self.parts.append((name, filename, bytearray()))

    def _data(self, data: bytes, start: int, end: int) -> None:
        _, filename, buffer = self.parts[-1]
        if filename is None and len(buffer) + end - start > FIELD_MAX_BYTES:
            raise _Malformed(f"Part exceeded maximum size of {FIELD_MAX_BYTES // 1024}KB.")
        buffer += data[start:end]


async def _read_multipart(request: Request, max_batch: int) -> list[ImageInput]:
    _, params = parse_options_header(request.headers.get("content-type", ""))
    collected = _Parts(max_batch)
    try:
        if b"boundary" not in params:
            raise _Malformed("Missing boundary in multipart.")
        parser = MultipartParser(params[b"boundary"], collected.callbacks())
        async for chunk in request.stream():  # a body over the limit raises 413 from here (app.core.body_limit)
            parser.write(chunk)
        parser.finalize()
    except _TooManyFiles:
        raise _too_many(max_batch) from None
    except _Malformed as exc:
        raise InputError(f"malformed multipart body: {exc}", status=400) from None
    except FormParserError:  # the parser's own refusals (a broken part, a boundary over 256 bytes)
        raise InputError("malformed multipart body: Invalid multipart data.", status=400) from None
    parts = collected.parts
    unknown = sorted({name for name, _, _ in parts} - {"images", "demographics"})
    if unknown:
        raise InputError(f"unknown multipart fields {unknown}: send 'images' (repeatable) and 'demographics'")
    images = [(filename, bytes(data)) for name, filename, data in parts if name == "images"]
    if not images:
        raise InputError("no images: send one or more multipart fields named 'images'")
    if any(filename is None for filename, _ in images):
        raise InputError("each 'images' field must be a file part (with a filename)")
    given = [(filename, data) for name, filename, data in parts if name == "demographics"]
    demographics = _demographics_field(given[-1] if given else None, len(images))
    return [
        ImageInput(name=filename or f"image {i}", data=data, demographics=d)
        for i, ((filename, data), d) in enumerate(zip(images, demographics, strict=True))
    ]


def _demographics_field(part: tuple[str | None, bytearray] | None, n: int) -> list[dict[str, str | None] | None]:
    """The last 'demographics' part (filename, bytes), as a form's lookup of a repeated field gives."""
    if part is None:
        return [None] * n
    filename, raw = part
    if filename is not None:
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
