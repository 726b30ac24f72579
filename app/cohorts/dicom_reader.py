"""Reading untrusted DICOM files within fixed bounds (``ImageLimits``), before any pixel is decoded.

A DICOM file can claim far more than it holds: a deflated data set (PS3.5 A.5) inflates up to
~1000×, and Rows × Columns × BitsAllocated × NumberOfFrames describe whatever size the header
likes. pydicom's own reader inflates a deflated file whole and decodes every frame, so this module
reads it another way:

- Transfer syntax: only those a decoder is installed for among ``_CANDIDATE_SYNTAXES``
  (uncompressed, deflated, RLE, JPEG baseline/extended, JPEG 2000); others are refused (422).
- Header: only the elements this service uses are read (others are skipped by seeking, never
  loaded), and reading stops at the pixel data; at most ``dicom_header_bytes`` may be read (413).
- Deflated data sets are inflated lazily, in 1 MiB steps, into a temporary file (not memory), and
  only as far as the reader needs; a file whose data set would inflate past its expansion budget
  (``ImageLimits.expansion_budget``) is refused from its header, before its pixel data is inflated (413).
- Image header: Rows and Columns positive with Rows × Columns ≤ ``max_pixels`` (413);
  SamplesPerPixel 1 or 3, BitsAllocated 1/8/16/32, BitsStored ≤ BitsAllocated, NumberOfFrames a
  positive integer, a (non-float) Pixel Data element present (422).
- Pixel data: uncompressed data must hold every frame the header describes (422); compressed data
  may describe at most the expansion budget for all its frames (413); a JPEG / JPEG 2000 first frame
  must have the header's Rows × Columns (422), because the decoder allocates whatever the codestream
  itself claims.
- Only the first frame is ever decoded.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import numpy as np
from PIL import Image
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import get_frame
from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble
from pydicom.pixels import get_decoder, pixel_array
from pydicom.pixels.utils import get_expected_length
from pydicom.tag import BaseTag, Tag

from app.cohorts.image_limits import MIN_EXPANSION_BUDGET, ImageLimits

_CHUNK = 1 << 20
_UNDEFINED_LENGTH = 0xFFFFFFFF
_PIXEL_DATA = 0x7FE00010
_ANY_PIXEL_DATA = {0x7FE00008, 0x7FE00009, _PIXEL_DATA}  # float, double float, integer
_CANDIDATE_SYNTAXES = (
    uid.ImplicitVRLittleEndian,
    uid.ExplicitVRLittleEndian,
    uid.ExplicitVRBigEndian,
    uid.DeflatedExplicitVRLittleEndian,
    uid.RLELossless,
    uid.JPEGBaseline8Bit,
    uid.JPEGExtended12Bit,
    uid.JPEG2000Lossless,
    uid.JPEG2000,
)
_CODESTREAM_FORMATS = {
    uid.JPEGBaseline8Bit: "JPEG",
    uid.JPEGExtended12Bit: "JPEG",
    uid.JPEG2000Lossless: "JPEG2000",
    uid.JPEG2000: "JPEG2000",
}
# What rendering the first frame needs (``dicom.render_grey``) besides the pixel data itself.
IMAGE_TAGS = (
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "NumberOfFrames",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "RescaleIntercept",
    "RescaleSlope",
    "RescaleType",
    "ModalityLUTSequence",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "VOILUTSequence",
    "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths",
)


class DicomError(Exception):
    """A file that is not a readable DICOM image, or whose tags are malformed (422)."""


class DicomTooLarge(Exception):
    """A DICOM file that would cost more than a limit allows to read or decode (413)."""


DicomSource = Path | bytes | IO[bytes]  # a file, its bytes, or a seekable file object


@cache
def supported_syntaxes() -> tuple[uid.UID, ...]:
    return tuple(s for s in _CANDIDATE_SYNTAXES if get_decoder(s).is_available)


def read_tags(source: DicomSource, keywords: Sequence[str], limits: ImageLimits) -> Dataset:
    """The named top-level elements only; reading stops past the last of them, so no pixel data is
    read and a deflated data set is inflated only that far."""
    tags: list[BaseTag | int] = [Tag(k) for k in keywords]
    last = max(tags)
    with open_dicom(source, limits) as dicom:
        return dicom.read_dataset(lambda tag, vr, length: tag > last, tags)


def check_image(source: DicomSource, limits: ImageLimits) -> None:
    """Every check of the module docstring that needs no pixel decoded (cheap: headers only)."""
    with open_dicom(source, limits) as dicom:
        dicom.read_image_header()


def decode_first_frame(source: DicomSource, limits: ImageLimits) -> tuple[np.ndarray, Dataset]:
    """The first frame's stored values (YBR converted to RGB) and the elements needed to render them."""
    with open_dicom(source, limits) as dicom:
        header = dicom.read_image_header()
        if dicom.syntax in _CODESTREAM_FORMATS:
            dicom.check_codestream(header)
        dicom.stream.seek(0)
        try:
            frame = pixel_array(dicom.stream, index=0, transfer_syntax_uid=dicom.read_syntax)
        except Exception as exc:  # pydicom's decoders raise many types for corrupt or unsupported data
            raise DicomError(f"cannot decode DICOM pixel data: {type(exc).__name__}: {exc}") from exc
        return frame, header.dataset


@dataclass(frozen=True)
class ImageHeader:
    dataset: Dataset  # the IMAGE_TAGS present, with the file meta
    frames: int
    pixel_length: int  # bytes, or 0xFFFFFFFF (encapsulated)


@dataclass
class OpenDicom:
    stream: BinaryIO  # the whole file; a deflated data set appears inflated
    syntax: uid.UID  # as stored
    read_syntax: uid.UID  # how ``stream``'s data set is encoded (deflated reads as Explicit VR LE)
    meta: FileMetaDataset
    data_start: int
    stored_bytes: int
    limits: ImageLimits
    header_left: int  # read budget left after the file meta

    def read_dataset(self, stop_when: Callable[[BaseTag, str | None, int], bool], tags: list[BaseTag | int]) -> Dataset:
        self.stream.seek(self.data_start)
        budget = _ReadBudget(self.stream, self.header_left, self.limits.dicom_header_bytes)
        try:
            ds = read_dataset(
                cast(BinaryIO, budget),
                self.read_syntax.is_implicit_VR,
                self.read_syntax.is_little_endian,
                stop_when=stop_when,
                specific_tags=tags,
            )
        except (DicomError, DicomTooLarge):
            raise
        except Exception as exc:  # pydicom raises many types for corrupt element structures
            raise DicomError(f"the DICOM data set is corrupt: {type(exc).__name__}: {exc}") from exc
        ds.file_meta = self.meta
        return ds

    def read_until_pixels(self, keywords: Sequence[str]) -> Dataset:
        """The named elements before the pixel data; the stream is left at the pixel data element."""
        return self.read_dataset(lambda tag, vr, length: tag in _ANY_PIXEL_DATA, [Tag(k) for k in keywords])

    def read_image_header(self) -> ImageHeader:
        ds = self.read_until_pixels(IMAGE_TAGS)
        element = self.pixel_element()
        if element is None:
            raise DicomError("the DICOM file has no pixel data (no PixelData element)")
        tag, _, length = element
        if tag != _PIXEL_DATA:
            raise DicomError("the DICOM file holds float pixel data, which is not supported")
        rows, columns = _positive(ds, "Rows"), _positive(ds, "Columns")
        if problem := self.limits.pixel_problem(columns, rows):
            raise DicomTooLarge(problem)
        frames = _positive(ds, "NumberOfFrames", default=1)
        bits = _positive(ds, "BitsAllocated")
        if bits not in (1, 8, 16, 32):
            raise DicomError(f"BitsAllocated {bits} is not 1, 8, 16 or 32")
        if not 1 <= _positive(ds, "BitsStored", default=bits) <= bits:
            raise DicomError("BitsStored is larger than BitsAllocated")
        if _positive(ds, "SamplesPerPixel", default=1) not in (1, 3):
            raise DicomError("SamplesPerPixel is not 1 (greyscale) or 3 (colour)")
        if not str(ds.get("PhotometricInterpretation", "") or "").strip():
            raise DicomError("the DICOM file has no PhotometricInterpretation")
        self._check_size(get_expected_length(ds), length, frames)
        return ImageHeader(dataset=ds, frames=frames, pixel_length=length)

    def _check_size(self, expected: int, length: int, frames: int) -> None:
        budget = self.limits.expansion_budget(self.stored_bytes)
        limit = (
            f"above the budget of {budget} bytes (FAIRAUDIT_MAX_COMPRESSION_RATIO {self.limits.max_expansion:g} "
            f"× the file's {self.stored_bytes} bytes, and at least {MIN_EXPANSION_BUDGET})"
        )
        if self.syntax.is_encapsulated:
            if length != _UNDEFINED_LENGTH:
                raise DicomError("compressed pixel data is not encapsulated (it has a defined length)")
            if expected > budget:
                raise DicomTooLarge(f"{frames} frame(s) of compressed pixel data decode to {expected} bytes, {limit}")
            return
        if length == _UNDEFINED_LENGTH:
            raise DicomError("uncompressed pixel data has an undefined length")
        if length < expected:
            raise DicomError(
                f"the pixel data holds {length} bytes but Rows × Columns × SamplesPerPixel × BitsAllocated "
                f"for {frames} frame(s) need {expected} (truncated?)"
            )
        inflated = self.stream.tell() - self.data_start + length
        if self.deflated and inflated > budget:
            raise DicomTooLarge(f"the deflated data set inflates to at least {inflated} bytes, {limit}")

    @property
    def deflated(self) -> bool:
        return self.syntax == uid.DeflatedExplicitVRLittleEndian

    def pixel_element(self) -> tuple[int, bytes | None, int] | None:
        """``(tag, VR, length)`` of the element the header stopped at (VR ``None`` for implicit VR),
        leaving the stream at its value; ``None`` at the end of the file."""
        little = "<" if self.read_syntax.is_little_endian else ">"
        data = self.stream.read(8)
        if len(data) < 8:
            return None
        if self.read_syntax.is_implicit_VR:
            group, element, length = struct.unpack(f"{little}HHL", data)
            vr = None
        else:
            group, element, vr, _ = struct.unpack(f"{little}HH2sH", data)
            extra = self.stream.read(4)
            if len(extra) < 4:
                return None
            (length,) = struct.unpack(f"{little}L", extra)
        return group << 16 | element, vr, length

    def check_codestream(self, header: ImageHeader) -> None:
        """The first frame's JPEG / JPEG 2000 codestream must have the header's size (module docstring)."""
        ds = header.dataset
        offsets = None
        if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
            offsets = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
        try:
            frame = get_frame(self.stream, 0, number_of_frames=header.frames, extended_offsets=offsets)
            with Image.open(io.BytesIO(frame), formats=[_CODESTREAM_FORMATS[self.syntax]]) as image:
                size = image.size
        except Exception as exc:  # corrupt fragments or codestream
            raise DicomError(f"cannot read the first frame's compressed data: {type(exc).__name__}: {exc}") from exc
        if size != (int(ds.Columns), int(ds.Rows)):
            raise DicomError(
                f"the first frame's codestream is {size[0]}x{size[1]} but Columns × Rows say "
                f"{int(ds.Columns)}x{int(ds.Rows)}"
            )


@contextmanager
def open_dicom(source: DicomSource, limits: ImageLimits) -> Iterator[OpenDicom]:
    """The file with its meta read and its transfer syntax checked; the stream is kept open inside."""
    with ExitStack() as stack:
        if isinstance(source, bytes):
            raw: BinaryIO = io.BytesIO(source)
            stored = len(source)
        elif isinstance(source, str | os.PathLike):
            raw = stack.enter_context(Path(source).open("rb"))
            stored = Path(source).stat().st_size
        else:  # a seekable file (an archive member, ``members.spool``), read from its start
            raw = cast(BinaryIO, source)
            stored = raw.seek(0, io.SEEK_END)
            raw.seek(0)
        budget = _ReadBudget(raw, limits.dicom_header_bytes, limits.dicom_header_bytes)
        try:
            read_preamble(cast(BinaryIO, budget), force=False)
            meta = _read_file_meta_info(cast(BinaryIO, budget))
        except DicomTooLarge:
            raise
        except Exception as exc:  # not DICOM, or a corrupt file meta
            raise DicomError(f"not a readable DICOM file: {exc}") from exc
        syntax = uid.UID(str(meta.get("TransferSyntaxUID", "") or "").strip())
        if not syntax:
            raise DicomError("the DICOM file meta has no TransferSyntaxUID")
        if syntax not in supported_syntaxes():
            names = ", ".join(s.name for s in supported_syntaxes())
            raise DicomError(f"transfer syntax {syntax} ({syntax.name}) is not supported; supported: {names}")
        data_start = raw.tell()
        stream, read_syntax = raw, syntax
        if syntax == uid.DeflatedExplicitVRLittleEndian:
            stream = cast(BinaryIO, stack.enter_context(_Inflated(raw, data_start, limits.expansion_budget(stored))))
            read_syntax = uid.ExplicitVRLittleEndian
        yield OpenDicom(stream, syntax, read_syntax, meta, data_start, stored, limits, budget.left)


def _positive(ds: Dataset, keyword: str, default: int | None = None) -> int:
    """An integer element that must be positive (absent: ``default``, or refused when required)."""
    try:
        value: Any = ds.get(keyword)
        if value is None or value == "":
            if default is None:
                raise DicomError(f"the DICOM file has no {keyword}")
            return default
        number = int(value)
    except DicomError:
        raise
    except Exception as exc:  # wrong value representation, several values, not a number
        raise DicomError(f"{keyword} {ds.get(keyword, '')!r} is not a positive integer") from exc
    if number < 1:
        raise DicomError(f"{keyword} {number} is not a positive integer")
    return number


class _ReadBudget:
    """A file view that refuses to read more than ``left`` bytes in all; skipping by seek is free."""

    def __init__(self, fp: BinaryIO, left: int, limit: int) -> None:
        self.fp, self.left, self.limit = fp, left, limit
        self.name = "<DICOM header>"

    def read(self, size: int = -1) -> bytes:
        data = self.fp.read(self.left + 1 if size is None or size < 0 else size)
        self.left -= len(data)
        if self.left < 0:
            raise DicomTooLarge(
                f"the DICOM elements before the pixel data take more than {self.limit} bytes "
                "(FAIRAUDIT_MAX_DICOM_HEADER_BYTES)"
            )
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.fp.seek(offset, whence)

    def tell(self) -> int:
        return self.fp.tell()


class _Inflated(io.RawIOBase):
    """The file with its deflated data set inflated on demand (module docstring), never past
    ``limit`` inflated bytes. ``head`` (preamble and file meta) is kept as stored."""

    def __init__(self, raw: BinaryIO, data_start: int, limit: int) -> None:
        super().__init__()
        raw.seek(0)
        self.head = raw.read(data_start)
        self._raw, self._limit = raw, limit
        self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        self._spool = tempfile.TemporaryFile()  # noqa: SIM115  (closed in close())
        self._size = 0  # inflated bytes in the spool
        self._pos = 0
        self._ended = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence == io.SEEK_END:
            self._inflate(None)
            offset += len(self.head) + self._size
        if offset < 0:
            raise ValueError("negative seek position")
        self._pos = offset
        return offset

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        if self._pos < len(self.head):
            done = min(len(view), len(self.head) - self._pos)
            view[:done] = self.head[self._pos : self._pos + done]
            self._pos += done
        if done < len(view):
            start = self._pos - len(self.head)
            self._inflate(start + len(view) - done)
            self._spool.seek(start)
            got = self._spool.readinto(view[done:])
            done += got
            self._pos += got
        return done

    def _inflate(self, upto: int | None) -> None:
        while not self._ended and (upto is None or self._size < upto):
            data = self._zlib.unconsumed_tail or self._raw.read(_CHUNK)
            if not data:
                self._ended = True
                return
            try:
                out = self._zlib.decompress(data, _CHUNK)
            except zlib.error as exc:
                raise DicomError(f"the deflated data set is corrupt: {exc}") from exc
            if self._size + len(out) > self._limit:
                raise DicomTooLarge(
                    f"the deflated data set inflates beyond {self._limit} bytes (FAIRAUDIT_MAX_COMPRESSION_RATIO)"
                )
            self._spool.seek(self._size)
            self._spool.write(out)
            self._size += len(out)
            self._ended = self._zlib.eof

    def close(self) -> None:
        self._spool.close()
        super().close()
