"""Serving fixtures: one model trained through the real API per test session, served on both databases.

The first test that asks for ``served`` uploads a cohort and trains a small model (32 px, 2 epochs)
through the HTTP API with real job processes; its own database keeps that registration. Later tests
get a copy of that model's folder and rows inserted in their database, so the session trains once.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from archives import TRAIN, make_zip, upload
from serving_helpers import ServedModel, columns, insert_model
from sqlalchemy import select

from app.fairness.models import Evaluation
from app.serving.models import ModelVersion
from app.settings import Settings


@dataclass(frozen=True)
class TrainedModel:
    folder: Path  # a pristine copy, outside every test's model directory
    model: dict[str, Any]  # the ModelVersion row the training job registered
    evaluation: dict[str, Any]  # its training evaluation row


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Small limits so bombs and oversized batches are cheap to send."""
    return settings.model_copy(
        update={"max_image_pixels": 250_000, "max_predict_batch": 8, "model_cache_size": 2, "bootstrap_resamples": 50}
    )


@pytest.fixture(scope="session")
def trained_store() -> dict[str, TrainedModel]:
    return {}


@pytest.fixture
def served(trained_store, tmp_path_factory, client, keys, settings, session_factory, run_jobs) -> ServedModel:
    headers = keys.headers()
    if "model" not in trained_store:
        trained_store["model"] = _train(client, headers, run_jobs, settings, session_factory, tmp_path_factory)
    else:
        trained = trained_store["model"]
        insert_model(session_factory, settings, trained.folder, trained.model, trained.evaluation)
    trained = trained_store["model"]
    return ServedModel(
        id=trained.model["id"],
        evaluation_id=trained.evaluation["id"],
        folder=settings.model_dir / trained.model["path"],
        headers=headers,
    )


def _train(client, headers, run_jobs, settings, session_factory, tmp_path_factory) -> TrainedModel:
    cohort = upload(client, headers, make_zip(120)).json()
    run_jobs()
    response = client.post("/v1/jobs", headers=headers, json={"cohort_id": cohort["id"], **TRAIN})
    assert response.status_code == 202, response.json()
    run_jobs(timeout=300)
    job = client.get(f"/v1/jobs/{response.json()['id']}", headers=headers).json()
    assert job["status"] == "succeeded", job["error"]
    with session_factory() as session:
        model = session.get(ModelVersion, job["result"]["model_version_id"])
        evaluation = session.scalar(
            select(Evaluation).where(Evaluation.model_version_id == model.id, Evaluation.kind == "training")
        )
        assert model is not None and evaluation is not None
        model_row, evaluation_row = columns(model), columns(evaluation)
    copy = tmp_path_factory.mktemp("trained") / model_row["path"]
    shutil.copytree(settings.model_dir / model_row["path"], copy)
    return TrainedModel(copy, model_row, evaluation_row)
