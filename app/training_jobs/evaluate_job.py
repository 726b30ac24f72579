"""The external-validation job: run a registered model version on another cohort and store the
evaluation. Inference uses the model's own ONNX full graph and ``model.json`` (the files serving
uses, hashes verified first), so the numbers describe the model as it is served."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.cohorts.cache import load_cohort_arrays
from app.cohorts.models import Cohort
from app.cohorts.storage import cache_dir
from app.core.errors import InputError
from app.fairness.engine.inputs import PredictionSet
from app.fairness.engine.thresholds import exit_index
from app.fairness.evaluation import evaluate_predictions
from app.fairness.storage import store_evaluation
from app.jobs.context import Completion, JobContext
from app.serving.integrity import verify_model_files
from app.serving.models import ModelVersion
from app.training.export import make_session, sigmoid

BATCH = 64


def run_evaluation_job(ctx: JobContext) -> Completion:
    model_id, cohort_id, split = ctx.config["model_version_id"], ctx.config["cohort_id"], ctx.config["split"]
    with ctx.session_factory() as session:
        model = session.get(ModelVersion, model_id)
        cohort = session.get(Cohort, cohort_id)
        if model is None or cohort is None or cohort.deleted_at is not None:
            raise InputError("the model version or the cohort no longer exists")
        folder, files, attributes = ctx.settings.model_dir / model.path, dict(model.files), list(cohort.attributes)
    verify_model_files(folder, files)
    manifest = json.loads((folder / "model.json").read_text())
    arrays = load_cohort_arrays(cache_dir(ctx.settings, cohort_id))
    index = np.arange(len(arrays.labels)) if split == "all" else arrays.indices(split)
    if len(index) == 0:
        raise InputError(f"cohort {cohort_id} has no items in split {split!r}")
    mean = np.asarray(manifest["preprocessing"]["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(manifest["preprocessing"]["std"], dtype=np.float32).reshape(1, -1, 1, 1)
    session = make_session(folder / "full.onnx")
    probs = []
    for start in range(0, len(index), BATCH):
        ctx.check_cancel()
        batch = np.asarray(arrays.images[index[start : start + BATCH]], dtype=np.float32)
        x = (batch.transpose(0, 3, 1, 2) / 255.0 - mean) / std
        (logits,) = session.run(["logits"], {"image": x.astype(np.float32)})
        probs.append(sigmoid(logits))
        ctx.progress({"done": start + len(batch), "total": len(index), "fraction": (start + len(batch)) / len(index)})
    scores = np.concatenate(probs)
    multi = scores.shape[1] > 1
    predictions = PredictionSet(
        y_true=arrays.labels[index].astype(np.int64),
        exit_scores=scores,
        groups={name: values[index] for name, values in arrays.attributes.items()},
        threshold=float(manifest["operating_threshold"]),
        exit_index=exit_index(scores, manifest["exit_thresholds"]) if multi else None,
        exit_cost=np.asarray(manifest["exit_costs"]) if multi else None,
        sample_ids=arrays.item_ids[index],
    )
    outcome = evaluate_predictions(predictions, attributes=attributes, settings=ctx.settings)

    def register(session: Session) -> dict[str, Any]:
        stored = store_evaluation(
            session,
            ctx.settings,
            organisation_id=ctx.organisation_id,
            kind="external",
            name=f"{model_id} on {cohort_id} ({split})",
            predictions=predictions,
            report=outcome.report,
            rows=outcome.rows,
            metric_definition_version=outcome.version,
            config=outcome.config,
            model_version_id=model_id,
            cohort_id=cohort_id,
            job_id=ctx.job_id,
            split=split,
        )
        return {"evaluation_id": stored.id}

    return Completion(result={"items": len(index)}, register=register)
