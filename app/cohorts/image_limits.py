"""What one untrusted image file may cost to read, checked before any pixel is decoded.

The same limits apply at cohort upload (header checks), in the ingestion job and at prediction:

- ``max_pixels`` (``FAIRAUDIT_MAX_IMAGE_PIXELS``): rows × columns of any image (413).
- ``max_expansion`` (``FAIRAUDIT_MAX_COMPRESSION_RATIO``, shared with archives): how far a DICOM's
  deflated data set or compressed pixel data may expand relative to the file's size, but at least
  ``MIN_EXPANSION_BUDGET`` (so small, highly compressible legitimate files still pass) (413).
- ``dicom_header_bytes`` (``FAIRAUDIT_MAX_DICOM_HEADER_BYTES``): bytes read from a DICOM's elements
  before its pixel data; elements this service does not use are skipped, not read (413).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

if TYPE_CHECKING:  # decoding processes import this module: no settings machinery for them
    from app.settings import Settings

MIN_EXPANSION_BUDGET = 16 * 1024 * 1024

# ``max_pixels`` is the one pixel limit, checked on every header before decoding. Pillow's own
# process-wide limit would otherwise refuse first, quoting its own number instead of the setting.
Image.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int = 64_000_000
    max_expansion: float = 200.0
    dicom_header_bytes: int = 16 * 1024 * 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageLimits:
        return cls(
            max_pixels=settings.max_image_pixels,
            max_expansion=settings.max_compression_ratio,
            dicom_header_bytes=settings.max_dicom_header_bytes,
        )

    def expansion_budget(self, stored_bytes: int) -> int:
        """The most bytes a file of ``stored_bytes`` may expand to (see the module docstring)."""
        return max(int(self.max_expansion * stored_bytes), MIN_EXPANSION_BUDGET)

    def pixel_problem(self, width: int, height: int) -> str | None:
        """Why a ``width × height`` image is refused, or ``None`` when it is within the limit."""
        if width * height <= self.max_pixels:
            return None
        return (
            f"decompression bomb: image is {width}x{height} = {width * height} pixels, "
            f"above the limit of {self.max_pixels} (FAIRAUDIT_MAX_IMAGE_PIXELS)"
        )
