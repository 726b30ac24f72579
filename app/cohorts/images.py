"""Decode one untrusted image file (PNG, JPEG or DICOM) into the cache's fixed-size ``uint8`` array.

- The format is decided by the file's first bytes, never its name, and Pillow is only allowed the
  sniffed format's parser.
- Decompression bombs: the pixel count in the header is checked against ``max_pixels`` before any
  pixel is decoded; Pillow's own ``DecompressionBombWarning`` is an error too (so the effective limit
  is the lower of ``max_pixels`` and ``Image.MAX_IMAGE_PIXELS``).
- Truncated or corrupt files are errors (``ImageFile.LOAD_TRUNCATED_IMAGES`` stays off).
- JPEGs are decoded with ``Image.draft()``: libjpeg scales by 1/2, 1/4 or 1/8 while decoding, to the
  smallest size still at least ``size`` on both sides, which is several times faster.
- Resize rule: the largest centred square is cut out (the longer side loses equal margins) and
  resized to ``size × size`` with bilinear (antialiased) resampling — no padding, no distortion.
- ``decode_into_store`` is the decoding processes' task; it lives here rather than in ``ingest`` so
  those processes import only numpy and Pillow (and pydicom when a DICOM file turns up).
- Channels: greyscale becomes RGB by repeating the grey value; colour becomes greyscale by ITU-R
  601-2 luma (Pillow's ``convert("L")``); alpha is dropped. 16-bit greyscale PNGs are scaled to 8 bits.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from app.cohorts.cache import open_image_store

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
DICOM_MAGIC = b"DICM"  # at byte 128, after the preamble
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


class ImageDecodeError(Exception):
    """A file that cannot be accepted as an image; the message says why."""


def sniff_format(head: bytes) -> str | None:
    """``"PNG"``, ``"JPEG"`` or ``"DICOM"`` from a file's first 132 bytes, else ``None``."""
    if head.startswith(PNG_MAGIC):
        return "PNG"
    if head.startswith(JPEG_MAGIC):
        return "JPEG"
    if head[128:132] == DICOM_MAGIC:
        return "DICOM"
    return None


def decode_image(source: Path | bytes, size: int, channels: int, max_pixels: int) -> np.ndarray:
    """``(size, size, channels)`` ``uint8`` array of one image file or in-memory file."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()  # one read, parsed in memory
    fmt = sniff_format(data[:132])
    if fmt is None:
        raise ImageDecodeError("not a PNG, JPEG or DICOM image (unrecognised file content)")
    fp = io.BytesIO(data)
    image = _open_dicom(fp, max_pixels) if fmt == "DICOM" else _open_pillow(fp, fmt, size, channels, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            out = np.asarray(fit(to_channels(image, channels), size))
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"truncated or corrupt {fmt} image: {exc}") from exc
    finally:
        image.close()
    return out.reshape(size, size, channels)


def _open_pillow(fp: io.BytesIO, fmt: str, size: int, channels: int, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(fp, formats=[fmt])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"decompression bomb: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"truncated or corrupt {fmt} image: {exc}") from exc
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ImageDecodeError(
            f"decompression bomb: image is {width}x{height} = {width * height} pixels, above the limit of {max_pixels}"
        )
    if fmt == "JPEG":
        image.draft("L" if channels == 1 else "RGB", (size, size))
    return image


def _open_dicom(fp: io.BytesIO, max_pixels: int) -> Image.Image:
    # Imported here: pydicom adds start-up time to every decoding process, and most cohorts are JPEG/PNG.
    from app.cohorts.dicom import DicomError, decode_dicom

    try:
        return Image.fromarray(decode_dicom(fp, max_pixels))
    except DicomError as exc:
        raise ImageDecodeError(str(exc)) from exc


def to_channels(image: Image.Image, channels: int) -> Image.Image:
    """Convert to ``L`` (1 channel) or ``RGB`` (3) as described in the module docstring."""
    if image.mode in _SIXTEEN_BIT_MODES:
        wide = np.clip(np.asarray(image), 0, 65535).astype(np.uint32)
        image = Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8))
    target = "L" if channels == 1 else "RGB"
    return image if image.mode == target else image.convert(target)


def fit(image: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square and resize to ``size × size`` (the module's resize rule)."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    return image.resize(
        (size, size), Image.Resampling.BILINEAR, box=(left, top, left + side, top + side), reducing_gap=3.0
    )


def decode_into_store(
    folder: Path, n: int, size: int, channels: int, max_pixels: int, chunk: Sequence[tuple[int, str]]
) -> list[tuple[int, str]]:
    """Decode ``(row, path)`` pairs into rows of the cache's image array; return ``(row, error)``s.

    The array is opened for this chunk only, so a process holds at most one chunk of written pages.
    Rows are not flushed here (see ``ingest``): a synchronous write per chunk cost ~40 % of throughput.
    """
    store = open_image_store(folder, n, size, channels)
    errors = []
    for row, path in chunk:
        try:
            store[row] = decode_image(Path(path), size, channels, max_pixels)
        except ImageDecodeError as exc:
            errors.append((row, str(exc)))
        except Exception as exc:  # a decoder failing in an unforeseen way is still one bad file
            errors.append((row, f"cannot decode: {type(exc).__name__}: {exc}"))
    return errors
