"""DICOM files for the hostile-input tests, generated in the test: identifying tags, every transfer
syntax this service reads, and bombs (a deflated data set of zeros, headers that claim far more than
the file holds) built by streaming, so making a 1 GB bomb never holds 1 GB."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite, write_dataset, write_file_meta_info
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    generate_uid,
)

IDENTIFIERS = {
    "PatientName": "DOE^JANE^Q",
    "PatientID": "MRN-7731994",
    "PatientBirthDate": "19610415",
    "AccessionNumber": "ACC-55120933",
    "InstitutionName": "St Elsewhere General Hospital",
    "ReferringPhysicianName": "HOUSE^GREGORY",
}
PRIVATE_VALUE = "PRIVATE-TRIAL-CODE-4242"


def image_dataset(
    rows: int,
    cols: int,
    *,
    bits: int = 8,
    frames: int = 1,
    sex: str = "F",
    age: str = "063Y",
    syntax: UID = ExplicitVRLittleEndian,
) -> Dataset:
    """A greyscale image header (no pixel data) carrying every tag in ``IDENTIFIERS`` and a private tag."""
    uid = generate_uid()
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.1.1")
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.file_meta.TransferSyntaxUID = syntax
    ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "DX"
    for keyword, value in IDENTIFIERS.items():
        setattr(ds, keyword, value)
    ds.PatientSex, ds.PatientAge = sex, age
    ds.private_block(0x0099, "FAIRAUDIT TEST", create=True).add_new(0x01, "LO", PRIVATE_VALUE)
    ds.Rows, ds.Columns = rows, cols
    if frames != 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    return ds


def file_bytes(ds: Dataset, pixels: bytes | None = None) -> bytes:
    """``ds`` written by pydicom (deflating it when its transfer syntax says so)."""
    if pixels is not None:
        ds.PixelData = pixels
    buffer = io.BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def image_file(pixels: np.ndarray, syntax: UID = ExplicitVRLittleEndian, **tags: object) -> bytes:
    """A real single-frame greyscale DICOM of ``pixels`` (uint8 or uint16) in ``syntax``."""
    ds = image_dataset(*pixels.shape, bits=8 * pixels.dtype.itemsize, syntax=syntax)
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    order = ">" if syntax == ExplicitVRBigEndian else "<"  # pydicom writes Pixel Data bytes as given
    return file_bytes(ds, pixels.astype(pixels.dtype.newbyteorder(order)).tobytes())


def jpeg_dicom(pixels: np.ndarray, *, rows: int | None = None, cols: int | None = None) -> bytes:
    """A JPEG Baseline DICOM of 8-bit greyscale ``pixels``; ``rows``/``cols`` may lie about its size."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    ds = image_dataset(rows or pixels.shape[0], cols or pixels.shape[1], syntax=JPEGBaseline8Bit)
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.LossyImageCompression = "01"
    return file_bytes(ds)


def deflated_bomb(rows: int, cols: int, *, bits: int = 16, frames: int = 1) -> bytes:
    """A Deflated Explicit VR Little Endian DICOM whose pixel data is all zeros: a few hundred KB that
    inflate to ``rows × cols × bits/8 × frames`` bytes. Written by streaming zeros through zlib."""
    ds = image_dataset(rows, cols, bits=bits, frames=frames, syntax=DeflatedExplicitVRLittleEndian)
    meta = DicomBytesIO()
    write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    length = rows * cols * bits // 8 * frames
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [compressor.compress(body.getvalue() + struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OW", 0, length))]
    parts.append(compressor.flush(zlib.Z_FULL_FLUSH))
    # After a full flush the compressor forgets its history, so every further block of zeros
    # compresses to the same bytes: compress one and repeat it.
    step = 1 << 24
    block = compressor.compress(bytes(step)) + compressor.flush(zlib.Z_FULL_FLUSH)
    whole, rest = divmod(length, step)
    parts.append(block * whole)
    parts.append(compressor.compress(bytes(rest)) + compressor.flush())
    deflated = b"".join(parts)
    return b"\0" * 128 + b"DICM" + meta.getvalue() + deflated + (b"\0" if len(deflated) % 2 else b"")


def pixel_less(rows: int = 16, cols: int = 16) -> bytes:
    """An image header with no Pixel Data element."""
    return file_bytes(image_dataset(rows, cols))


def tags_present(data: bytes) -> set[str]:
    """Which ``IDENTIFIERS`` values (and the private value) occur anywhere in ``data``."""
    values = {**IDENTIFIERS, "private": PRIVATE_VALUE}
    return {k for k, v in values.items() if v.encode() in data}
