"""Prediction requests: both body formats, DICOM and PNG, stored rows, and every kind of bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cohorts.cohort_helpers import dicom_bytes
from serving_helpers import image_bytes, json_body, multipart, noise_images
from sqlalchemy import select

from app.serving.models import Prediction


def test_multipart_and_json_give_the_same_predictions(client, served, session_factory, keys):
    headers = keys.headers(role="predictor")
    images = noise_images(4, seed=1)
    demographics = [{"sex": "female"}, None, {"sex": "male", "age_group": "60-79"}, {"sex": None}]
    form = client.post(f"/v1/models/{served.id}/predict", headers=headers, **multipart(images, demographics))
    body = client.post(f"/v1/models/{served.id}/predict", headers=headers, **json_body(images, demographics))
    assert form.status_code == 200, form.json()
    assert body.status_code == 200, body.json()
    a, b = form.json(), body.json()
    manifest = json.loads((served.folder / "model.json").read_text())
    assert a["model_id"] == served.id and a["evaluation_id"] == served.evaluation_id and a["alias"] is None
    assert a["model_sha256"] == client.get(f"/v1/models/{served.id}", headers=served.headers).json()["sha256"]
    assert a["operating_threshold"] == manifest["operating_threshold"]
    for x, y in zip(a["predictions"], b["predictions"], strict=True):
        assert x["probability"] == y["probability"] and x["exit_index"] == y["exit_index"] and x["id"] != y["id"]
        assert x["label"] == int(x["probability"] >= manifest["operating_threshold"])
        assert x["confidence"] == pytest.approx(max(x["probability"], 1 - x["probability"]))
        assert 0 <= x["exit_index"] < len(manifest["exit_thresholds"])
    with session_factory() as session:
        rows = {r.id: r for r in session.scalars(select(Prediction))}
    assert len(rows) == 8
    stored = [rows[p["id"]] for p in a["predictions"]]
    assert [r.demographics for r in stored] == demographics
    assert [r.probability for r in stored] == [p["probability"] for p in a["predictions"]]
    assert all(r.outcome is None and r.model_version_id == served.id for r in stored)


def test_dicom_and_png_of_the_same_pixels_give_the_same_prediction(client, served):
    """A greyscale image to an RGB model is converted the way ingestion converted the training images
    (grey repeated over the three channels), whatever its file format."""
    rng = np.random.default_rng(5)
    grey = np.asarray(rng.integers(0, 256, size=(36, 44)), dtype=np.uint8)
    files = {
        "dicom": dicom_bytes(grey),
        "grey png": image_bytes(grey),
        "rgb png": image_bytes(np.repeat(grey[:, :, None], 3, axis=2)),
        "jpeg": image_bytes(np.repeat(grey[:, :, None], 3, axis=2), "JPEG"),
    }
    response = client.post(f"/v1/models/{served.id}/predict", headers=served.headers, **multipart(list(files.values())))
    assert response.status_code == 200, response.json()
    dicom, grey_png, rgb_png, jpeg = response.json()["predictions"]
    assert dicom["probability"] == grey_png["probability"] == rgb_png["probability"]
    assert dicom["exit_index"] == grey_png["exit_index"] == rgb_png["exit_index"]
    assert jpeg["probability"] == pytest.approx(rgb_png["probability"], abs=0.05)  # lossy, but the same image


def _png_of_pixels(n: int) -> bytes:
    return image_bytes(np.zeros((n, n), dtype=np.uint8))


BAD_INPUTS = {
    "not an image": (lambda: multipart([b"this is a CSV file,\n1,2\n"]), 422, "not a PNG, JPEG or DICOM"),
    "truncated": (lambda: multipart([noise_images(1)[0][:-40]]), 422, "img0.png"),
    "decompression bomb": (lambda: multipart([_png_of_pixels(600)]), 413, "FAIRAUDIT_MAX_IMAGE_PIXELS"),
    "batch too large": (lambda: multipart(noise_images(9)), 413, "at most 8 images"),
    "JSON batch too large": (lambda: json_body(noise_images(9)), 413, "got 9 images"),
    "bad base64": (lambda: {"json": {"images": [{"data": "not base64!"}]}}, 422, "base64"),
    "empty JSON batch": (lambda: {"json": {"images": []}}, 422, "images"),
    "no images field": (lambda: {"files": [("image", ("a.png", b"x"))]}, 422, "unknown multipart fields"),
    "demographics misaligned": (lambda: multipart(noise_images(2), [{"sex": "female"}]), 422, "1 entries for 2"),
    "demographics not labels": (lambda: multipart(noise_images(1), [{"age": 63}]), 422, "demographics"),
    "other content type": (lambda: {"content": b"\x89PNG", "headers": {"content-type": "image/png"}}, 415, "multipart"),
    "no boundary": (
        lambda: {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data"}},
        400,
        "boundary",
    ),
    "broken multipart": (
        lambda: {
            "content": b"--x\r\nnot a part\r\n\r\n",
            "headers": {"content-type": "multipart/form-data; boundary=x"},
        },
        400,
        "malformed multipart body",
    ),
    "boundary too long": (
        lambda: {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data; boundary=" + "b" * 300}},
        400,
        "malformed multipart body",
    ),
    "demographics as a file": (
        lambda: {"files": [("images", ("a.png", noise_images(1)[0])), ("demographics", ("d.json", b"[null]"))]},
        422,
        "not a file",
    ),
    "image as a text field": (lambda: {"files": [("images", (None, b"x"))]}, 422, "must be a file part"),
    "too many text fields": (
        lambda: {"files": [("images", ("a.png", noise_images(1)[0])), *[("demographics", (None, b"[null]"))] * 9]},
        400,
        "Too many fields",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_a_clear_4xx(client, served, session_factory, case):
    make, status, words = BAD_INPUTS[case]
    kwargs = make()
    headers = {**served.headers, **kwargs.pop("headers", {})}
    response = client.post(f"/v1/models/{served.id}/predict", headers=headers, **kwargs)
    assert response.status_code == status, response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert words in json.dumps(response.json()), response.json()
    with session_factory() as session:
        assert session.scalars(select(Prediction)).first() is None, "a refused request stores nothing"


def test_a_bad_image_in_a_batch_names_which_one(client, served):
    images = [*noise_images(2), b"GIF89a", noise_images(1)[0][:100]]
    response = client.post(f"/v1/models/{served.id}/predict", headers=served.headers, **multipart(images))
    assert response.status_code == 422
    assert [(e["image"], e["file"]) for e in response.json()["errors"]] == [(2, "img2.png"), (3, "img3.png")]
