"""Helpers for the synthetic-cohort tests: ingestion through the real pipeline and archive reading."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
from cohort_helpers import LIMITS
from PIL import Image

from app.cohorts.archive import open_archive
from app.cohorts.config import CohortConfig
from app.cohorts.ingest import build_cache
from app.cohorts.manifest import ParsedManifest, parse_manifest


def ingest(archive: Path, tmp_path: Path, config: CohortConfig) -> tuple[ParsedManifest, Path]:
    """Check, parse and cache an archive as an upload and its ingestion would (decoding from the
    archive itself); returns the manifest and the cache."""
    with open_archive(archive, tmp_path / "manifest", LIMITS) as checked:
        manifest = parse_manifest(checked.manifest, config, files=checked.files, read_images=checked.read)
    assert checked.prefix == "", "paths below are from the archive's top"
    build_cache(manifest, archive, tmp_path / "cache", config.image_size, config.channels)
    return manifest, tmp_path / "cache"


def manifest_rows(archive: Path) -> list[dict[str, str]]:
    with zipfile.ZipFile(archive) as zf:
        return list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode("utf-8"))))


def content_digest(archive: Path) -> str:
    """SHA-256 over every member's name and content (PNG/JPEG members by their decoded pixels, so the
    digest pins what the generator drew rather than the image encoder's bytes)."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(archive) as zf:
        for name in sorted(zf.namelist()):
            data = zf.read(name)
            if name.endswith((".png", ".jpg")):
                data = np.asarray(Image.open(io.BytesIO(data))).tobytes()
            digest.update(name.encode() + b"\0" + data)
    return digest.hexdigest()


def png_images(archive: Path, rows: list[dict[str, str]], name_field: str, ext: str = "png") -> np.ndarray:
    """The archive's PNG images in manifest order, as float32 (n, h, w, 3)."""
    with zipfile.ZipFile(archive) as zf:
        return np.stack(
            [np.asarray(Image.open(io.BytesIO(zf.read(f"{r[name_field]}.{ext}"))), dtype=np.float32) for r in rows]
        )
