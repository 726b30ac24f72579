"""Images, requests and model registration for the serving tests."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import inspect
from sqlalchemy.orm import Session, sessionmaker

from app.auth.service import ensure_organisation
from app.db.base import Base
from app.db.engine import transaction
from app.fairness.models import Evaluation
from app.serving.models import ModelVersion
from app.settings import Settings

ORG = "St Elsewhere"  # the organisation of ``Keys.headers()``'s default


@dataclass(frozen=True)
class ServedModel:
    id: str
    evaluation_id: str | None
    folder: Path  # inside the test's model directory
    headers: dict[str, str]  # an auditor key of ORG


def columns(row: Base) -> dict[str, Any]:
    return {attr.key: getattr(row, attr.key) for attr in inspect(row).mapper.column_attrs}


def model_columns(folder: Path, model_id: str, **fields: Any) -> dict[str, Any]:
    """A ModelVersion row for an exported folder, registered the way the training job does it."""
    manifest_bytes = (folder / "model.json").read_bytes()
    manifest = json.loads(manifest_bytes)
    return {
        "id": model_id,
        "method": manifest.get("method", "fair_multi_exit"),
        "backbone": "small",
        "path": model_id,
        "sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "files": {name: info["sha256"] for name, info in manifest["files"].items()},
        "thresholds": {"operating": manifest["operating_threshold"], "exits": manifest["exit_thresholds"]},
        "config": {},
        "stage": "candidate",
        **fields,
    }


def insert_model(
    factory: sessionmaker[Session],
    settings: Settings,
    source: Path,
    model: dict[str, Any],
    evaluation: dict[str, Any] | None = None,
    org: str = ORG,
) -> None:
    """Copy a model folder into the test's repository and register it (and its training evaluation)
    under ``org``; rows of another database lose their job and cohort links."""
    shutil.copytree(source, settings.model_dir / model["path"])
    with transaction(factory) as session:
        organisation_id = ensure_organisation(session, org).id
        unlinked = {"organisation_id": organisation_id, "job_id": None, "cohort_id": None}
        session.add(ModelVersion(**{**model, **unlinked}))
        session.flush()
        if evaluation is not None:
            session.add(Evaluation(**{**evaluation, **unlinked}))


def image_bytes(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def noise_images(n: int, seed: int = 0, shape: tuple[int, ...] = (40, 48, 3)) -> list[bytes]:
    """PNGs of smooth random patterns (non-square, so the centre crop matters)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        coarse = rng.integers(0, 256, size=(5, 6, shape[2]), dtype=np.uint8)
        pixels = np.asarray(Image.fromarray(coarse).resize((shape[1], shape[0]), Image.Resampling.BILINEAR))
        out.append(image_bytes(pixels))
    return out


def multipart(images: list[bytes], demographics: list[Any] | None = None) -> dict[str, Any]:
    """Keyword arguments of ``client.post`` for a multipart prediction request."""
    files = [("images", (f"img{i}.png", data, "application/octet-stream")) for i, data in enumerate(images)]
    data = {"demographics": json.dumps(demographics)} if demographics is not None else None
    return {"files": files, "data": data}


def json_body(images: list[bytes], demographics: list[Any] | None = None) -> dict[str, Any]:
    items = [{"data": base64.b64encode(d).decode(), "name": f"img{i}.png"} for i, d in enumerate(images)]
    for item, demo in zip(items, demographics or [None] * len(items), strict=True):
        if demo is not None:
            item["demographics"] = demo
    return {"json": {"images": items}}
