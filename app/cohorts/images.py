"""Decode one untrusted image file (PNG, JPEG or DICOM) into the cache's fixed-size ``uint8`` array.

- The format is decided by the file's first bytes, never its name, and Pillow is only allowed the
  sniffed format's parser.
- Limits (``ImageLimits``): the pixel count in the header is checked against ``max_pixels``
  (``FAIRAUDIT_MAX_IMAGE_PIXELS``, the only pixel limit: Pillow's own process-wide one is switched
  off in ``image_limits``) before any pixel is decoded; DICOM files get the checks of
  ``dicom_reader`` (transfer syntax, header size, expansion) before theirs. Over a limit is
  ``ImageTooLarge`` (413), anything else unusable ``ImageDecodeError`` (422).
- Truncated or corrupt files are errors (``ImageFile.LOAD_TRUNCATED_IMAGES`` stays off).
- ``check_image_file`` is the cheap upload-time check: the same header checks, plus the PNG IEND
  chunk or JPEG end-of-image marker near the end of the file (a truncated file lacks it), without
  decoding pixels (a JPEG's size is read by ``jpeg_header``, not Pillow: it is 10× cheaper).
  Decoding can still fail later on data corrupt inside.
- JPEGs are decoded with ``Image.draft()``: libjpeg scales by 1/2, 1/4 or 1/8 while decoding, to the
  smallest size still at least ``size`` on both sides, which is several times faster.
- Resize rule: the largest centred square is cut out (the longer side loses equal margins) and
  resized to ``size × size`` with bilinear (antialiased) resampling — no padding, no distortion.
- ``decode_into_store`` is the decoding processes' task; it lives here rather than in ``ingest`` so
  those processes import only numpy and Pillow (and pydicom when a DICOM file turns up). It reads
  the images from a folder, from the stored zip archive (each process opens it itself:
  ``members.ZipMembers``), or from bytes handed over by the process streaming a tar.gz.
- Channels: greyscale becomes RGB by repeating the grey value; colour becomes greyscale by ITU-R
  601-2 luma (Pillow's ``convert("L")``); alpha is dropped. 16-bit greyscale PNGs are scaled to 8 bits.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, TypeVar

import numpy as np
from PIL import Image

from app.cohorts.image_limits import ImageLimits
from app.cohorts.image_store import open_image_store
from app.cohorts.jpeg_header import JpegHeaderError, jpeg_frame_size
from app.cohorts.members import ZipMembers, archive_kind, closing_member
from app.jobs.lifeline import die_with_parent

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
DICOM_MAGIC = b"DICM"  # at byte 128, after the preamble
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
_END_MARKERS = {"PNG": (b"IEND\xaeB`\x82", "IEND chunk"), "JPEG": (b"\xff\xd9", "end-of-image marker")}
_TAIL = 4096  # bytes searched for the end marker (some writers append a little data after it)
T = TypeVar("T")
_OTHER_FORMATS = {b"GIF87a": "GIF", b"GIF89a": "GIF", b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"BM": "BMP"}


class ImageDecodeError(Exception):
    """A file that cannot be accepted as an image; the message says why."""

    status = 422


class ImageTooLarge(ImageDecodeError):
    """An image over one of the ``ImageLimits``."""

    status = 413


def refusal_status(errors: Iterable[ImageDecodeError]) -> int:
    """413 when every refused image is only too large, else 422 (something must be fixed in the file)."""
    return 413 if all(isinstance(e, ImageTooLarge) for e in errors) else 422


def sniff_format(head: bytes) -> str | None:
    """``"PNG"``, ``"JPEG"`` or ``"DICOM"`` from a file's first 132 bytes, else ``None``."""
    if head.startswith(PNG_MAGIC):
        return "PNG"
    if head.startswith(JPEG_MAGIC):
        return "JPEG"
    if head[128:132] == DICOM_MAGIC:
        return "DICOM"
    return None


def _unsupported(head: bytes) -> ImageDecodeError:
    other = next((name for magic, name in _OTHER_FORMATS.items() if head.startswith(magic)), None)
    if other is None and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        other = "WebP"
    what = f"a {other} image" if other else "unrecognised file content"
    return ImageDecodeError(f"not a PNG, JPEG or DICOM image ({what})")


def decode_image(source: Path | bytes | IO[bytes], size: int, channels: int, limits: ImageLimits) -> np.ndarray:
    """``(size, size, channels)`` ``uint8`` array of one image file, in-memory file or seekable file object."""
    data: Path | bytes | IO[bytes]
    if isinstance(source, bytes):
        data = source
        head = source[:132]
    elif isinstance(source, Path | str):
        data = Path(source)
        with data.open("rb") as f:
            head = f.read(132)
    else:
        data = source
        data.seek(0)
        head = data.read(132)
        data.seek(0)
    fmt = sniff_format(head)
    if fmt is None:
        raise _unsupported(head)
    if fmt == "DICOM":  # read from the file itself: a DICOM may be large, and only its first frame is used
        image = _open_dicom(data, limits)
    else:
        raw = data if isinstance(data, bytes) else data.read_bytes() if isinstance(data, Path) else data.read()
        fp = io.BytesIO(raw)  # one read, parsed in memory
        image = _open_pillow(fp, fmt, limits)
        if fmt == "JPEG":
            image.draft("L" if channels == 1 else "RGB", (size, size))
    try:
        out = np.asarray(fit(to_channels(image, channels), size))
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"truncated or corrupt {fmt} image: {exc}") from exc
    finally:
        image.close()
    return out.reshape(size, size, channels)


def check_image_file(source: Path | IO[bytes], limits: ImageLimits) -> None:
    """Header checks of one file or seekable file object, no pixel decoded (module docstring); raises
    like ``decode_image``."""
    with ExitStack() as stack:
        f = stack.enter_context(source.open("rb")) if isinstance(source, Path) else source
        f.seek(0)
        head = f.read(132)
        fmt = sniff_format(head)
        if fmt is None:
            raise _unsupported(head)
        if fmt == "DICOM":
            _dicom_errors_as_image_errors(lambda: _check_dicom(source, limits))
            return
        f.seek(max(f.seek(0, io.SEEK_END) - _TAIL, 0))
        tail = f.read()
        if fmt == "JPEG":
            _check_jpeg_size(f, limits)
        else:
            _open_pillow(f, fmt, limits).close()  # reads the header only
    marker, name = _END_MARKERS[fmt]
    if marker not in tail:
        raise ImageDecodeError(f"truncated {fmt} image: no {name} at its end")


def _check_jpeg_size(f: IO[bytes], limits: ImageLimits) -> None:
    try:
        width, height = jpeg_frame_size(f)
    except JpegHeaderError as exc:
        raise ImageDecodeError(f"truncated or corrupt JPEG image: {exc}") from exc
    if problem := limits.pixel_problem(width, height):
        raise ImageTooLarge(problem)


def _open_pillow(fp: io.BytesIO | IO[bytes], fmt: str, limits: ImageLimits) -> Image.Image:
    fp.seek(0)
    try:
        image = Image.open(fp, formats=[fmt])
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"truncated or corrupt {fmt} image: {exc}") from exc
    if problem := limits.pixel_problem(*image.size):
        image.close()
        raise ImageTooLarge(problem)
    return image


def _open_dicom(source: Path | bytes | IO[bytes], limits: ImageLimits) -> Image.Image:
    # Imported here: pydicom adds start-up time to every decoding process, and most cohorts are JPEG/PNG.
    from app.cohorts.dicom import decode_dicom

    return Image.fromarray(_dicom_errors_as_image_errors(lambda: decode_dicom(source, limits)))


def _check_dicom(source: Path | IO[bytes], limits: ImageLimits) -> None:
    from app.cohorts.dicom_reader import check_image

    check_image(source, limits)


def _dicom_errors_as_image_errors(read: Callable[[], T]) -> T:
    from app.cohorts.dicom_reader import DicomError, DicomTooLarge

    try:
        return read()
    except DicomTooLarge as exc:
        raise ImageTooLarge(str(exc)) from exc
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


_held_zips: dict[Path, ZipMembers] = {}  # zips this process keeps open across chunks (``hold_zip``)
_PROCESS_LIFE = ExitStack()  # what a decoding process keeps open until it exits (``start_decoder``)


@contextmanager
def hold_zip(source: Path | None, spill_dir: Path) -> Iterator[None]:
    """Keep the stored zip ``source`` open in this process while the block runs (nothing for a folder,
    a tar.gz or ``None``): ``decode_into_store`` would otherwise re-read its central directory for
    every chunk (18 ms for 5,000 entries, ~6 % of a 256-image chunk's decoding)."""
    if source is None or source.is_dir() or source in _held_zips or archive_kind(source) != "zip":
        yield
        return
    with ZipMembers.open(source, spill_dir) as zipped:
        _held_zips[source] = zipped
        try:
            yield
        finally:
            del _held_zips[source]


def start_decoder(parent_pid: int, source: Path | None, spill_dir: Path) -> None:
    """A decoding process's initializer: die with the process that started it
    (``app.jobs.lifeline``) and keep ``source`` open (``hold_zip``) until it exits."""
    die_with_parent(parent_pid)
    _PROCESS_LIFE.enter_context(hold_zip(source, spill_dir))  # referenced by the module: open until exit


def decode_into_store(
    folder: Path,
    n: int,
    size: int,
    channels: int,
    limits: ImageLimits,
    source: Path | None,
    chunk: Sequence[tuple[int, str | bytes | IO[bytes]]],
) -> list[tuple[int, str]]:
    """Decode ``(row, image)`` pairs into rows of the cache's image array; return ``(row, error)``s.

    ``image``: a path relative to ``source`` (a folder, or a stored zip archive opened here), or the
    file's bytes or a file object (``source`` is then ``None``). The array is opened for this chunk only, so a process
    holds at most one chunk of written pages. Rows are not flushed here (see ``ingest``): a
    synchronous write per chunk cost ~40 % of throughput.
    """
    store = open_image_store(folder, n, size, channels)
    errors = []
    with ExitStack() as stack:
        zipped = None
        if source and not source.is_dir():
            zipped = _held_zips.get(source) or stack.enter_context(ZipMembers.open(source, folder))
        for row, image in chunk:
            errors.extend(_decode_row(store, row, image, source, zipped, limits))
    return errors


def _decode_row(
    store: np.memmap,
    row: int,
    image: str | bytes | IO[bytes],
    source: Path | None,
    zipped: ZipMembers | None,
    limits: ImageLimits,
) -> list[tuple[int, str]]:
    """Decode one image into ``store[row]``; ``[(row, error)]`` when it cannot be."""
    size, channels = store.shape[1], store.shape[3]
    try:
        if not isinstance(image, str):
            store[row] = decode_image(image, size, channels, limits)
        elif zipped is not None:
            with closing_member(zipped.read(image)) as member:
                store[row] = decode_image(member, size, channels, limits)
        else:
            assert source is not None
            store[row] = decode_image(source / image, size, channels, limits)
    except ImageDecodeError as exc:
        return [(row, str(exc))]
    except Exception as exc:  # a decoder failing in an unforeseen way is still one bad file
        return [(row, f"cannot decode: {type(exc).__name__}: {exc}")]
    return []
