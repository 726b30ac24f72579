"""The endpoint against an independent reference: the PyTorch network itself.

A seeded multi-exit network (BatchNorm statistics randomised so no layer is an identity) is exported
with the real exporter; its exit thresholds are set between the reference confidences so every exit
policy branch is used and no sample sits near a threshold. The reference path shares nothing with
serving after decoding: the trainer's ``Normalizer``, PyTorch's forward pass, and the training code's
``exit_index``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from serving_helpers import insert_model, model_columns, multipart, noise_images

from app.cohorts.image_limits import ImageLimits
from app.cohorts.images import decode_image
from app.fairness.engine.thresholds import exit_index
from app.modelpkg.preprocessing import normalization
from app.serving.models import ModelVersion
from app.serving.runtime import ModelFiles
from app.training.data import Normalizer
from app.training.export import describe_model, export_model
from app.training.networks import MultiExitNet, build_network

SIZE, N = 32, 24
MODEL_ID = "mdl_parity"


@dataclass(frozen=True)
class Exported:
    folder: Path
    net: MultiExitNet
    images: list[bytes]
    reference: np.ndarray  # (N, n_exits) PyTorch probabilities
    thresholds: list[float | None]


def reference_probabilities(net: MultiExitNet, images: list[bytes]) -> np.ndarray:
    pixels = np.stack([decode_image(data, SIZE, 3, ImageLimits(max_pixels=10**6)) for data in images])
    x = Normalizer(3, torch.device("cpu"))(torch.from_numpy(pixels).permute(0, 3, 1, 2))
    with torch.no_grad():
        return torch.sigmoid(net(x)).double().numpy()


def spread_thresholds(probs: np.ndarray) -> list[float | None]:
    """θ per exit between two well-separated confidences: about a third leave at exit 0, half of the
    rest at exit 1, none at exit 2 (θ None), half of the rest at exit 3, the others at the final head."""
    confidence = np.maximum(probs, 1 - probs)
    alive = np.ones(len(probs), dtype=bool)
    thresholds: list[float | None] = []
    for e, share in enumerate([1 / 3, 1 / 2, None, 1 / 2]):
        if share is None:
            thresholds.append(None)
            continue
        c = np.sort(confidence[alive, e])[::-1]
        k = max(1, int(len(c) * share))
        gaps = np.diff(-c)  # c[i] - c[i+1] >= 0
        k = k - 1 + int(np.argmax(gaps[k - 1 :] > 1e-3))  # first well-separated cut at or after k
        theta = float((c[k - 1] + c[k]) / 2)
        thresholds.append(theta)
        alive &= confidence[:, e] < theta
    return [*thresholds, None]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Exported:
    torch.manual_seed(0)
    net = build_network("small", in_channels=3, image_size=SIZE, multi_exit=True).eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
    images = noise_images(N, seed=7)
    reference = reference_probabilities(net, images)
    thresholds = spread_thresholds(reference)
    mean, std = normalization(3)
    description = describe_model(
        net,
        backbone="small",
        version=MODEL_ID,
        method="fair_multi_exit",
        operating_threshold=0.5,
        exit_thresholds=thresholds,
    )
    pixels = np.stack([decode_image(d, SIZE, 3, ImageLimits(max_pixels=10**6)) for d in images[:8]]).transpose(
        0, 3, 1, 2
    )
    parity = ((pixels / 255.0 - np.reshape(mean, (1, 3, 1, 1))) / np.reshape(std, (1, 3, 1, 1))).astype(np.float32)
    folder = tmp_path_factory.mktemp("parity") / MODEL_ID
    export_model(net, folder, parity_images=parity, description=description)
    return Exported(folder, net, images, reference, thresholds)


@pytest.fixture
def headers(exported, keys, settings, session_factory) -> dict[str, str]:
    insert_model(session_factory, settings, exported.folder, model_columns(exported.folder, MODEL_ID))
    return keys.headers(role="predictor")


def predict_all(client, headers, images: list[bytes], batch: int = 8) -> list[dict[str, Any]]:
    out = []
    for start in range(0, len(images), batch):
        response = client.post(
            f"/v1/models/{MODEL_ID}/predict", headers=headers, **multipart(images[start : start + batch])
        )
        assert response.status_code == 200, response.json()
        out += response.json()["predictions"]
    return out


def test_endpoint_matches_pytorch(client, headers, exported):
    served = predict_all(client, headers, exported.images)
    expected_exit = exit_index(exported.reference, exported.thresholds)
    assert set(expected_exit.tolist()) == {0, 1, 3, 4}, "the thresholds must exercise every policy branch"
    assert [p["exit_index"] for p in served] == expected_exit.tolist()
    expected = exported.reference[np.arange(N), expected_exit]
    probability = np.array([p["probability"] for p in served])
    assert np.abs(probability - expected).max() <= 1e-4
    assert [p["label"] for p in served] == (expected >= 0.5).astype(int).tolist()
    np.testing.assert_allclose([p["confidence"] for p in served], np.maximum(expected, 1 - expected), atol=1e-4)


class CountingSession:
    def __init__(self, inner: Any) -> None:
        self.inner, self.rows = inner, []

    def run(self, names: Any, feed: dict[str, np.ndarray]) -> list[Any]:
        self.rows.append(len(next(iter(feed.values()))))
        return self.inner.run(names, feed)


def test_early_exit_skips_later_stages(client, headers, exported, settings, session_factory):
    expected_exit = exit_index(exported.reference, exported.thresholds)
    predict_all(client, headers, exported.images[:1])  # loads the model into the app's cache
    with session_factory() as session:
        files = ModelFiles.of(settings, session.get(ModelVersion, MODEL_ID))
    loaded = client.app.state.model_cache.get(files)  # the instance serving uses
    loaded.chain.sessions = counting = [CountingSession(s) for s in loaded.chain.sessions]

    batch = list(range(8))
    predict_all(client, headers, [exported.images[i] for i in batch])
    first_exit = [0, 1, 2, 3]  # the first exit of each stage graph: exits 3 and 4 share the last one
    assert [s.rows for s in counting] == [[int((expected_exit[batch] >= e).sum())] for e in first_exit]

    early = [i for i in range(N) if expected_exit[i] == 0][:4]
    for s in counting:
        s.rows.clear()
    predict_all(client, headers, [exported.images[i] for i in early])
    assert [s.rows for s in counting] == [[len(early)], [], [], []]
