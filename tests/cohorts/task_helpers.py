"""Tiny multi-class and multi-label manifests for cohort tests: parsed from real files on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cohort_helpers import png, write_files

from app.cohorts.config import CohortConfig
from app.cohorts.manifest import ParsedManifest, parse_manifest
from app.core.errors import InputError

ISIC_GT_HEADER = "image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK"
ISIC_META_HEADER = "image,age_approx,anatom_site_general,lesion_id,sex"


def parse(root: Path, manifest: str, images: list[str], **config: Any) -> ParsedManifest:
    """Write ``images`` and ``manifest.csv`` under ``root`` and parse them with ``config``."""
    write_files(root, {name: png() for name in images})
    (root / "manifest.csv").write_text(manifest)
    return parse_manifest(root / "manifest.csv", CohortConfig.model_validate({"name": "c", **config}))


def refused(root: Path, manifest: str, images: list[str], **config: Any) -> InputError:
    with pytest.raises(InputError) as info:
        parse(root, manifest, images, **config)
    return info.value


def isic_one_hot(code: str) -> str:
    """The ground-truth cells of one diagnosis, as the challenge writes them."""
    return ",".join("1.0" if c == code else "0.0" for c in ISIC_GT_HEADER.split(",")[1:])


def generic_classes(per_class: dict[str, int], *, patients_per_item: int = 1) -> tuple[str, list[str]]:
    """A generic manifest (image,label,sex,patient) with ``per_class[c]`` rows of class ``c``."""
    rows, images = ["image,label,sex,patient"], []
    i = 0
    for name, count in per_class.items():
        for _ in range(count):
            rows.append(f"img/{i}.png,{name},{'female' if i % 2 else 'male'},p{i // patients_per_item}")
            images.append(f"img/{i}.png")
            i += 1
    return "\n".join(rows) + "\n", images
