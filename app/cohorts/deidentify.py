"""De-identifying a kept DICOM source (cohort config ``keep_sources``) per the DICOM PS3.15 Basic
Application Level Confidentiality Profile, applied as an allow-list.

The profile lists attributes to remove (X), blank (Z), replace (D) or give new UIDs (U); attributes
it does not list may stay. This keeps less than that:

- ``KEEP``: what displaying the image needs (Image Pixel, Modality LUT and VOI LUT modules, SOP
  Class, Modality) and nothing the profile lists; LUT sequence items keep only their descriptor,
  type and data;
- ``BLANK``: the profile's Type 2 patient and study attributes stay present but empty (Z), so the
  file is still a conforming instance (PatientSex too; PatientAge is removed, as the profile says);
- Study, Series and SOP Instance UIDs are replaced (U) by UIDs derived from the cohort and the old
  UID, so instances of one study stay together within the cohort, and a retried job gives the same;
- PatientIdentityRemoved ``YES`` and DeidentificationMethodCodeSequence ``113100`` are added.

Everything else — names, IDs, birth date, accession number, institution, device serial numbers,
dates, free text, every private tag, overlays, and any element after the pixel data — is dropped;
the 128-byte preamble is zeroed (it may hold another format's header). The pixel data is copied
unchanged, in chunks (never held in memory): text burned into the pixels is not removed, so
BurnedInAnnotation is kept for a reader to see. A deflated file is written inflated (Explicit VR
Little Endian), which its expansion budget bounds.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import UID, generate_uid

from app.cohorts.dicom_reader import DicomError, DicomSource, open_dicom
from app.cohorts.image_limits import ImageLimits

METHOD = "FairAudit: DICOM PS3.15 Basic Application Level Confidentiality Profile (allow-list)"
KEEP = (
    "SpecificCharacterSet",
    "ImageType",
    "SOPClassUID",
    "Modality",
    "SeriesNumber",
    "InstanceNumber",
    "BurnedInAnnotation",
    "LossyImageCompression",
    "LossyImageCompressionRatio",
    "LossyImageCompressionMethod",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "NumberOfFrames",
    "FrameIncrementPointer",
    "Rows",
    "Columns",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "PixelAspectRatio",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "RedPaletteColorLookupTableDescriptor",
    "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData",
    "RescaleIntercept",
    "RescaleSlope",
    "RescaleType",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "PresentationLUTShape",
    "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths",
)
LUT_SEQUENCES = ("ModalityLUTSequence", "VOILUTSequence")
_LUT_ITEM_KEEP = ("LUTDescriptor", "ModalityLUTType", "LUTData")
BLANK = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)
NEW_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
_ITEM, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE0DD
_CHUNK = 1 << 20


def deidentify_dicom(source: DicomSource, target: Path, uid_salt: str, limits: ImageLimits) -> None:
    """Write ``source`` de-identified (module docstring) at ``target``: written beside it, then renamed,
    so ``target`` is never a partial file (``source`` may be ``target`` itself)."""
    temporary = target.with_name(f".{target.name}.deidentified")
    with open_dicom(source, limits) as dicom:
        source_ds = dicom.read_until_pixels([*KEEP, *LUT_SEQUENCES, *NEW_UIDS])
        element = dicom.pixel_element()
        if element is None:
            raise DicomError(f"{target.name}: no pixel data to keep")
        _, vr, length = element
        out_ds = _deidentified(source_ds, uid_salt)
        out_ds.file_meta = _file_meta(out_ds, dicom.read_syntax)
        little = "<" if dicom.read_syntax.is_little_endian else ">"
        try:
            with temporary.open("xb") as out:
                dcmwrite(out, out_ds, enforce_file_format=True)
                if vr is None:
                    out.write(struct.pack(f"{little}HHL", 0x7FE0, 0x0010, length))
                else:
                    out.write(struct.pack(f"{little}HH2sHL", 0x7FE0, 0x0010, vr, 0, length))
                _copy_pixel_value(dicom.stream, out, length, little)
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)


def _deidentified(source: Dataset, uid_salt: str) -> Dataset:
    ds = Dataset()
    for keyword in KEEP:
        if keyword in source:
            ds[keyword] = source[keyword]
    for keyword in LUT_SEQUENCES:
        if keyword in source:
            items = []
            for item in source[keyword].value:
                kept = Dataset()
                for name in _LUT_ITEM_KEEP:
                    if name in item:
                        kept[name] = item[name]
                items.append(kept)
            setattr(ds, keyword, items)
    for keyword in BLANK:
        setattr(ds, keyword, "")
    for keyword in NEW_UIDS:
        old = str(source.get(keyword, "") or "")
        setattr(ds, keyword, generate_uid(entropy_srcs=[uid_salt, keyword, old]) if old else generate_uid())
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "113100", "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    ds.DeidentificationMethodCodeSequence = [code]
    return ds


def _file_meta(ds: Dataset, transfer_syntax: UID) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = transfer_syntax
    return meta


def _copy_pixel_value(source: BinaryIO, out: BinaryIO, length: int, little: str) -> None:
    """Copy the pixel data value: ``length`` bytes, or (undefined length) items up to the sequence end."""
    if length != 0xFFFFFFFF:
        _copy(source, out, length)
        return
    while True:
        header = source.read(8)
        if len(header) < 8:
            raise DicomError("the encapsulated pixel data ends without its sequence delimiter")
        out.write(header)
        group, element, item_length = struct.unpack(f"{little}HHL", header)
        tag = group << 16 | element
        if tag == _SEQUENCE_END:
            return
        if tag != _ITEM or item_length == 0xFFFFFFFF:
            raise DicomError(f"unexpected element ({group:04X},{element:04X}) in encapsulated pixel data")
        _copy(source, out, item_length)


def _copy(source: BinaryIO, out: BinaryIO, length: int) -> None:
    while length:
        chunk = source.read(min(length, _CHUNK))
        if not chunk:
            raise DicomError("the pixel data is truncated")
        out.write(chunk)
        length -= len(chunk)
