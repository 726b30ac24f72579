"""The upload's JPEG size reader agrees with Pillow on real JPEGs and refuses malformed headers."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from app.cohorts.image_limits import ImageLimits
from app.cohorts.images import ImageDecodeError, ImageTooLarge, check_image_file
from app.cohorts.jpeg_header import MAX_FILL_BYTES, MAX_SEGMENTS, JpegHeaderError, jpeg_frame_size

RNG = np.random.default_rng(0)


def jpeg(width: int, height: int, mode: str = "RGB", **options: object) -> bytes:
    channels = {"L": 1, "RGB": 3, "CMYK": 4}[mode]
    pixels = RNG.integers(0, 255, (height, width, channels), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode).save(buffer, "JPEG", **options)
    return buffer.getvalue()


def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


SOF0 = segment(0xC0, bytes([8]) + struct.pack(">HH", 48, 64) + b"\x01\x01\x11\x00")

GOOD = {
    "baseline RGB": lambda: jpeg(64, 48),
    "grey": lambda: jpeg(31, 17, "L"),
    "CMYK": lambda: jpeg(20, 30, "CMYK"),
    "progressive": lambda: jpeg(100, 7, progressive=True),
    "EXIF and ICC segments": lambda: jpeg(40, 40, exif=b"Exif\x00\x00" + b"\x00" * 300, icc_profile=b"x" * 70_000),
    "restart markers": lambda: jpeg(256, 64, restart_marker_blocks=1),
    "optimised tables, 4:2:0": lambda: jpeg(33, 65, optimize=True, subsampling=2),
}


@pytest.mark.parametrize("case", list(GOOD))
def test_the_size_is_pillows(case: str) -> None:
    data = GOOD[case]()
    assert jpeg_frame_size(io.BytesIO(data)) == Image.open(io.BytesIO(data)).size


def test_fill_bytes_before_a_marker_are_skipped() -> None:
    assert jpeg_frame_size(io.BytesIO(b"\xff\xd8" + b"\xff" * 7 + SOF0 + b"\xff\xda")) == (64, 48)


BAD = {
    "no start of image": (b"\xff\xd9" + SOF0, "no start-of-image"),
    "scan before the frame": (b"\xff\xd8" + segment(0xDA, b"\x00" * 8) + SOF0, "no frame header before the image data"),
    "end of image before the frame": (b"\xff\xd8\xff\xd9" + SOF0, "no frame header"),
    "file ends in a segment length": (b"\xff\xd8\xff\xe0\x00", "ends inside its header"),
    "file ends in the frame header": (b"\xff\xd8" + SOF0[:7], "ends inside its header"),
    "segment shorter than its length": (b"\xff\xd8\xff\xe0\x00\x01", "length 1 is below 2"),
    "not a marker": (b"\xff\xd8\x00\x00" + SOF0, "a marker was expected"),
    "stuffed zero as a marker": (b"\xff\xd8\xff\x00" + SOF0, "a marker was expected"),
    "zero width": (b"\xff\xd8" + segment(0xC2, bytes([8]) + struct.pack(">HH", 10, 0) + b"\x01"), "size of 0x10"),
    "endless fill bytes": (b"\xff\xd8" + b"\xff" * (10 * MAX_FILL_BYTES), f"more than {MAX_FILL_BYTES} fill bytes"),
    "endless segments": (b"\xff\xd8" + segment(0xE1, b"") * (MAX_SEGMENTS + 1) + SOF0, f"more than {MAX_SEGMENTS}"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_malformed_headers_are_refused(case: str) -> None:
    data, words = BAD[case]
    with pytest.raises(JpegHeaderError, match=words):
        jpeg_frame_size(io.BytesIO(data))


def test_the_upload_check_refuses_a_huge_frame_and_a_malformed_header_by_name() -> None:
    huge = b"\xff\xd8" + segment(0xC0, bytes([8]) + struct.pack(">HH", 60_000, 60_000) + b"\x01") + b"\xff\xd9"
    with pytest.raises(ImageTooLarge, match="60000x60000"):
        check_image_file(io.BytesIO(huge), ImageLimits())
    scan_first = b"\xff\xd8" + segment(0xDA, b"\x00" * 8) + SOF0 + b"\xff\xd9"
    with pytest.raises(ImageDecodeError, match="truncated or corrupt JPEG image: no frame header") as info:
        check_image_file(io.BytesIO(scan_first), ImageLimits())
    assert info.value.status == 422
