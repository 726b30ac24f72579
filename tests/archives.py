"""Small generic-preset cohort archives built in memory, shared by API and job tests."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

CONFIG = {
    "name": "tiny",
    "preset": "generic",
    "image_column": "image",
    "label_column": "label",
    "sensitive_attributes": ["sex"],
    "age_column": "age",
    "patient_id_column": "patient_id",
    "split": {"mode": "random", "seed": 1},
    "image_size": 32,
    "channels": 3,
}


def png_bytes(value: int, size: int = 40) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def make_zip(n: int = 60, *, extra: dict[str, bytes] | None = None, manifest: str | None = None) -> bytes:
    rows = ["image,label,sex,age,patient_id"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for i in range(n):
            zf.writestr(f"img/{i}.png", png_bytes(i * 3 % 256))
            rows.append(f"img/{i}.png,{i % 2},{'female' if i % 3 else 'male'},{30 + i % 60},p{i // 2}")
        zf.writestr("manifest.csv", manifest if manifest is not None else "\n".join(rows) + "\n")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buffer.getvalue()


def upload(client: TestClient, headers: dict[str, str], data: bytes, config: dict | None = None):
    return client.post(
        "/v1/cohorts",
        headers=headers,
        files={"archive": ("cohort.zip", data)},
        data={"config": json.dumps(config or CONFIG)},
    )


# A training request that finishes in seconds on CPU: small backbone, 2 epochs, no augmentation.
TRAIN = {
    "method": "fair_multi_exit_pairwise_eo",
    "sensitive_attributes": ["sex"],
    "backbone": "small",
    "epochs": 2,
    "batch_size": 16,
    "lr": 0.001,
    "seed": 3,
    "patience": None,
    "augment": {"hflip": False, "vflip": False, "rotate_degrees": 0, "brightness": 0, "contrast": 0},
}
