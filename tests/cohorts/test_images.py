"""Image decoding: untrusted files are refused with a reason; DICOM is rendered by the stated rule."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from cohort_helpers import dicom_bytes, image_bytes
from PIL import Image

from app.cohorts.image_limits import ImageLimits
from app.cohorts.images import ImageDecodeError, decode_image

MAX_PIXELS = 64_000_000


def decode(data: bytes, size: int = 32, channels: int = 3, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    return decode_image(data, size, channels, ImageLimits(max_pixels=max_pixels))


def refused(data: bytes, tmp_path: Path, name: str = "x.png", **kwargs: int) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ImageDecodeError) as info:
        decode_image(path, 32, 3, ImageLimits(max_pixels=kwargs.get("max_pixels", MAX_PIXELS)))
    return str(info.value)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width × height`` but carries almost no data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decompression_bomb_header_is_refused_before_decoding(tmp_path: Path) -> None:
    message = refused(png_header_only(100_000, 100_000), tmp_path)
    assert "decompression bomb" in message


def test_image_above_the_configured_pixel_limit(tmp_path: Path) -> None:
    data = image_bytes(np.zeros((100, 100, 3), dtype=np.uint8))
    message = refused(data, tmp_path, max_pixels=5_000)
    assert "100x100 = 10000 pixels, above the limit of 5000" in message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_images(tmp_path: Path, fmt: str) -> None:
    pixels = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    data = image_bytes(pixels, fmt)
    message = refused(data[: len(data) // 2], tmp_path)
    assert f"truncated or corrupt {fmt} image" in message


@pytest.mark.parametrize("content", [b"image,label\na.png,1\n", b"", b"%PDF-1.7 not an image"])
def test_non_image_named_png(tmp_path: Path, content: bytes) -> None:
    assert "not a PNG, JPEG or DICOM image" in refused(content, tmp_path, "scan.png")


def test_format_comes_from_content_not_name(tmp_path: Path) -> None:
    pixels = np.full((40, 40, 3), 90, dtype=np.uint8)
    path = tmp_path / "really_a_png.jpg"
    path.write_bytes(image_bytes(pixels, "PNG"))
    assert np.array_equal(decode_image(path, 40, 3, ImageLimits(max_pixels=MAX_PIXELS)), pixels)


def test_resize_rule_centre_crops_then_scales() -> None:
    wide = np.zeros((40, 80), dtype=np.uint8)
    wide[:, :12] = wide[:, 68:] = 255  # bright margins well outside the centred 40×40 square
    out = decode(image_bytes(wide), size=20, channels=1)
    assert out.shape == (20, 20, 1)
    assert out.max() == 0


def test_grey_and_colour_conversion() -> None:
    grey = np.full((16, 16), 77, dtype=np.uint8)
    assert np.array_equal(decode(image_bytes(grey), size=16), np.full((16, 16, 3), 77))
    red = np.zeros((16, 16, 3), dtype=np.uint8)
    red[..., 0] = 255
    assert np.all(decode(image_bytes(red), size=16, channels=1) == 76)  # ITU-R 601-2 luma of pure red


def test_sixteen_bit_png_scales_to_eight_bits() -> None:
    deep = np.full((16, 16), 65535 // 2, dtype=np.uint16)
    buf = io.BytesIO()
    Image.fromarray(deep).save(buf, "PNG")
    assert np.all(decode(buf.getvalue(), size=16, channels=1) == 127)


def test_jpeg_draft_decoding_is_close_to_a_full_decode() -> None:
    y, x = np.mgrid[0:512, 0:512]
    pixels = np.stack([x // 2, y // 2, (x + y) // 4], axis=-1).astype(np.uint8)
    out = decode(image_bytes(pixels, "JPEG", quality=95), size=64)
    full = np.asarray(Image.fromarray(pixels).resize((64, 64), Image.Resampling.BILINEAR))
    assert np.abs(out.astype(int) - full).mean() < 2


def test_png_and_dicom_of_the_same_pixels_decode_identically() -> None:
    pixels = np.random.default_rng(1).integers(10, 200, (48, 64), dtype=np.uint8)
    from_png = decode(image_bytes(pixels), size=32, channels=1)
    from_dicom = decode(dicom_bytes(pixels), size=32, channels=1)
    assert np.array_equal(from_png, from_dicom)


def test_dicom_modality_lut_then_window() -> None:
    stored = np.array([[0, 100], [200, 300]], dtype=np.uint16)
    # rescale: value = 2 * stored - 100 → [-100, 100, 300, 500]; window centre 200, width 400 spans
    # [0, 400) → -100 clips to black, 500 to white, 100 and 300 fall at a quarter and three quarters.
    data = dicom_bytes(stored, bits_stored=12, rescale=(2.0, -100.0), window=(200.0, 400.0))
    out = decode(data, size=2, channels=1)[..., 0]
    assert out[0, 0] == 0 and out[1, 1] == 255
    assert abs(int(out[0, 1]) - 64) <= 1 and abs(int(out[1, 0]) - 191) <= 1


def test_dicom_monochrome1_is_inverted() -> None:
    stored = np.array([[0, 100], [200, 300]], dtype=np.uint16)
    window = dict(bits_stored=12, rescale=(2.0, -100.0), window=(200.0, 400.0))
    mono2 = decode(dicom_bytes(stored, **window), size=2, channels=1)
    mono1 = decode(dicom_bytes(stored, photometric="MONOCHROME1", **window), size=2, channels=1)
    assert np.array_equal(mono1, 255 - mono2)


def test_dicom_without_window_is_stretched_to_its_range() -> None:
    stored = np.array([[1000, 2000], [3000, 1500]], dtype=np.uint16)
    out = decode(dicom_bytes(stored, bits_stored=12), size=2, channels=1)[..., 0]
    assert out[0, 0] == 0 and out[1, 0] == 255 and out[0, 1] == 128


def test_dicom_pixel_limit(tmp_path: Path) -> None:
    data = dicom_bytes(np.zeros((100, 100), dtype=np.uint8))
    assert "above the limit of 5000" in refused(data, tmp_path, "a.dcm", max_pixels=5_000)


def test_dicom_with_missing_pixel_data(tmp_path: Path) -> None:
    data = dicom_bytes(np.zeros((100, 100), dtype=np.uint8))
    message = refused(data[:-5000], tmp_path, "a.dcm")
    assert "DICOM" in message
