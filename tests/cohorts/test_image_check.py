"""Upload-time image checks: each bad kind of file is caught from its header, without decoding."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from cohort_helpers import image_bytes
from dicom_files import deflated_bomb, image_file, pixel_less
from PIL import Image
from test_images import png_header_only

from app.cohorts.image_limits import ImageLimits
from app.cohorts.images import ImageDecodeError, check_image_file

NOISE = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)


def pillow_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(NOISE).save(buffer, fmt)
    return buffer.getvalue()


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


BAD = {
    "truncated PNG": (lambda: truncated(image_bytes(NOISE)), 422, "truncated PNG image: no IEND chunk"),
    "truncated JPEG": (lambda: truncated(image_bytes(NOISE, "JPEG")), 422, "truncated JPEG image: no end-of-image"),
    "GIF": (lambda: pillow_bytes("GIF"), 422, "not a PNG, JPEG or DICOM image (a GIF image)"),
    "TIFF": (lambda: pillow_bytes("TIFF"), 422, "(a TIFF image)"),
    "100000x100000 PNG header": (lambda: png_header_only(100_000, 100_000), 413, "FAIRAUDIT_MAX_IMAGE_PIXELS"),
    "pixel-less DICOM": (pixel_less, 422, "no pixel data"),
    "deflate bomb DICOM": (lambda: deflated_bomb(8000, 8000), 413, "FAIRAUDIT_MAX_COMPRESSION_RATIO"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_files_are_caught_by_the_header_check(tmp_path: Path, case: str) -> None:
    make, status, words = BAD[case]
    path = tmp_path / "image"
    path.write_bytes(make())
    with pytest.raises(ImageDecodeError) as info:
        check_image_file(path, ImageLimits())
    assert info.value.status == status and words in str(info.value), str(info.value)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "DICOM"])
def test_good_files_pass(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "image"
    path.write_bytes(image_file(NOISE[..., 0]) if fmt == "DICOM" else image_bytes(NOISE, fmt))
    check_image_file(path, ImageLimits())
