"""Reading untrusted DICOM files within bounds: every readable syntax decodes to the same pixels,
and bombs, lies and malformed tags are refused from the header (413 too large, 422 malformed)."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
import pytest
from cohort_helpers import write_files
from dicom_files import deflated_bomb, file_bytes, image_dataset, image_file, jpeg_dicom, pixel_less
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGLSLossless,
    RLELossless,
)

from app.cohorts.config import CohortConfig
from app.cohorts.dicom import DicomError, read_demographics
from app.cohorts.image_limits import ImageLimits
from app.cohorts.images import ImageDecodeError, ImageTooLarge, decode_image
from app.cohorts.manifest import parse_manifest
from app.core.errors import InputError

LIMITS = ImageLimits()
PIXELS = np.random.default_rng(3).integers(0, 255, (48, 64), dtype=np.uint8)


def decode(data: bytes, limits: ImageLimits = LIMITS) -> np.ndarray:
    return decode_image(data, 32, 1, limits)


def refused(data: bytes, limits: ImageLimits = LIMITS) -> ImageDecodeError:
    with pytest.raises(ImageDecodeError) as info:
        decode(data, limits)
    return info.value


def rle(pixels: np.ndarray) -> bytes:
    ds = image_dataset(*pixels.shape)
    ds.PixelData = pixels.tobytes()
    ds.compress(RLELossless, encoding_plugin="pydicom")
    return file_bytes(ds)


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian])
def test_every_uncompressed_syntax_decodes_to_the_same_pixels(syntax) -> None:
    expected = decode(image_file(PIXELS))
    assert np.array_equal(decode(image_file(PIXELS, syntax)), expected)
    deep = PIXELS.astype(np.uint16) * 16
    assert np.array_equal(decode(image_file(deep, syntax)), decode(image_file(deep)))


def test_rle_and_jpeg_decode() -> None:
    assert np.array_equal(decode(rle(PIXELS)), decode(image_file(PIXELS)))
    assert np.abs(decode(jpeg_dicom(PIXELS)).astype(int) - decode(image_file(PIXELS))).mean() < 3


def test_only_the_first_frame_is_decoded() -> None:
    frames = np.stack([PIXELS, 255 - PIXELS, PIXELS // 2])
    ds = image_dataset(48, 64, frames=3)
    assert np.array_equal(decode(file_bytes(ds, frames.tobytes())), decode(image_file(PIXELS)))


@pytest.mark.parametrize(("rows", "cols", "frames", "size"), [(8000, 8000, 1, "125 KB"), (8000, 8000, 8, "1 MB")])
def test_deflate_bombs_are_refused_before_inflating(rows, cols, frames, size) -> None:
    """The issue's bombs: 125 KB claiming one 64-megapixel frame (+1.3 GB before), 1 MB inflating to
    1 GB (+2 GB). The header alone refuses them, in milliseconds."""
    bomb = deflated_bomb(rows, cols, frames=frames)
    assert len(bomb) < 1_100_000
    started = time.monotonic()
    error = refused(bomb)
    assert isinstance(error, ImageTooLarge) and error.status == 413
    assert "inflates to at least" in str(error) and "FAIRAUDIT_MAX_COMPRESSION_RATIO" in str(error)
    assert time.monotonic() - started < 10  # a generous bound that only catches inflating it


def test_a_deflated_stream_that_inflates_past_its_budget_stops_there() -> None:
    """A header that understates its pixel data does not help: inflation itself stops at the budget."""
    bomb = deflated_bomb(64, 64, frames=1)
    small = ImageLimits(max_expansion=2.0)
    assert decode(bomb, small).shape == (32, 32, 1)  # its 8 KB of pixels fit the 16 MiB floor
    big = deflated_bomb(4096, 4096, frames=2)  # 64 MiB of zeros in ~70 KB
    assert isinstance(refused(big, small), ImageTooLarge)


BAD_HEADERS = {
    "unsupported transfer syntax": (lambda: _with_syntax(image_file(PIXELS), JPEGLSLossless), 422, "not supported"),
    "no pixel data": (pixel_less, 422, "no pixel data"),
    "NumberOfFrames 0": (lambda: file_bytes(_tagged(NumberOfFrames=0), PIXELS.tobytes()), 422, "NumberOfFrames"),
    "BitsAllocated 64": (lambda: file_bytes(image_dataset(4, 4, bits=64), bytes(128)), 422, "BitsAllocated 64"),
    "no Rows": (lambda: file_bytes(_tagged(Rows=None), PIXELS.tobytes()), 422, "no Rows"),
    "truncated pixel data": (lambda: file_bytes(image_dataset(48, 64), PIXELS.tobytes()[:1000]), 422, "holds 1000"),
    "codestream larger than the header": (lambda: jpeg_dicom(PIXELS, rows=8, cols=8), 422, "codestream is 64x48"),
    "too many pixels": (lambda: file_bytes(image_dataset(3000, 3000), bytes(9_000_000)), 413, "3000x3000"),
}


def _tagged(**tags: object) -> object:
    ds = image_dataset(48, 64)
    for keyword, value in tags.items():
        if value is None:
            del ds[keyword]
        else:
            setattr(ds, keyword, value)
    return ds


def _with_syntax(data: bytes, syntax: str) -> bytes:
    old = str(ExplicitVRLittleEndian).encode() + b"\0"
    assert data.count(old) == 1
    return data.replace(old, syntax.encode() + b"\0" * (len(old) - len(syntax)))


@pytest.mark.parametrize("case", list(BAD_HEADERS))
def test_bad_headers_are_refused_before_decoding(case) -> None:
    make, status, words = BAD_HEADERS[case]
    error = refused(make(), ImageLimits(max_pixels=5_000_000))
    assert error.status == status and words in str(error), str(error)


def test_header_read_budget_counts_only_what_is_read() -> None:
    ds = image_dataset(48, 64)
    ds.private_block(0x0099, "FAIRAUDIT TEST").add_new(0x02, "OB", bytes(1_000_000))  # skipped, not read
    data = file_bytes(ds, PIXELS.tobytes())
    assert decode(data, ImageLimits(dicom_header_bytes=64 * 1024)).shape == (32, 32, 1)
    error = refused(data, ImageLimits(dicom_header_bytes=200))
    assert error.status == 413 and "FAIRAUDIT_MAX_DICOM_HEADER_BYTES" in str(error)


def test_pixel_limit_message_names_the_setting_not_pillows_limit() -> None:
    """Issue 10, item 16: Pillow's own limit (178956970) used to answer first."""
    from test_images import png_header_only

    error = refused(png_header_only(100_000, 100_000))
    assert isinstance(error, ImageTooLarge)
    assert "above the limit of 64000000 (FAIRAUDIT_MAX_IMAGE_PIXELS)" in str(error)
    assert "178956970" not in str(error)


def _age_element(vr: bytes, value: bytes) -> bytes:
    if vr == b"SQ":
        return b"\x10\x00\x10\x10SQ\x00\x00" + struct.pack("<I", len(value)) + value
    return b"\x10\x00\x10\x10" + vr + struct.pack("<H", len(value)) + value


@pytest.mark.parametrize(
    ("vr", "value"), [(b"FD", b"abc\x00"), (b"SQ", b"abcd"), (b"US", b"\x01\x02"), (b"AT", b"\x01\x02\x03\x04")]
)
def test_patient_age_with_a_malformed_value_representation_names_file_and_tag(tmp_path: Path, vr, value) -> None:
    """These answered 500 (BytesLengthException, OSError) or were silently read as no age."""
    good = image_file(PIXELS)
    at = good.index(b"\x10\x00\x10\x10AS")
    length = struct.unpack("<H", good[at + 6 : at + 8])[0]
    bad = good[:at] + _age_element(vr, value) + good[at + 8 + length :]
    root = write_files(tmp_path, {"a.dcm": bad, "b.dcm": good})
    with pytest.raises(DicomError, match="PatientAge"):
        read_demographics(root / "a.dcm", b"salt")
    (root / "manifest.csv").write_text("file,label\na.dcm,1\nb.dcm,0\n")
    with pytest.raises(InputError) as info:
        parse_manifest(root / "manifest.csv", CohortConfig(name="c", preset="dicom"))
    assert info.value.status == 422
    [error] = info.value.errors
    assert error["row"] == 2 and "a.dcm" in error["message"] and "PatientAge" in error["message"]
