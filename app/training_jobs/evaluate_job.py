"""The external-validation job: run a registered model version on another cohort and store the
evaluation. Inference uses the model's own ONNX full graph and ``model.json`` (probabilities per
its task: sigmoid, softmax or per-finding sigmoid; the cohort's task must be the model's), so the numbers describe
the model as it is served: ``model.json`` is checked against the hash its registration stored, the
full graph against ``model.json``, and ONNX Runtime runs the very bytes that were checked (a file
replaced on disk after the check is never what runs)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from app.cohorts.cache import load_cohort_arrays
from app.cohorts.groupings import parse_groupings
from app.cohorts.models import Cohort
from app.cohorts.storage import cache_dir
from app.core.errors import InputError
from app.fairness.evaluation import evaluate_predictions, intersections_to_report
from app.fairness.storage import store_evaluation
from app.jobs.context import Completion, JobContext
from app.modelpkg.folder import verify_manifest
from app.modelpkg.onnx_chain import make_session
from app.modelpkg.outputs import probabilities
from app.serving.models import ModelVersion
from app.training.run import cohort_predictions

BATCH = 64


def run_evaluation_job(ctx: JobContext) -> Completion:
    model_id, cohort_id, split = ctx.config["model_version_id"], ctx.config["cohort_id"], ctx.config["split"]
    with ctx.session_factory() as session:
        model = session.get(ModelVersion, model_id)
        cohort = session.get(Cohort, cohort_id)
        if model is None or cohort is None or cohort.deleted_at is not None:
            raise InputError("the model version or the cohort no longer exists")
        folder, manifest_sha256, attributes = ctx.settings.model_dir / model.path, model.sha256, list(cohort.attributes)
        trained = list(model.config.get("sensitive_attributes", []))
        groupings = parse_groupings(model.config.get("groupings"))
    verified = verify_manifest(folder, manifest_sha256)
    manifest, full = verified.manifest, verified.manifest.graphs.full
    session = make_session(verified.read_files([full.file])[full.file])
    # the model's own training groupings too; on another cohort a value they do not map is missing
    arrays = load_cohort_arrays(cache_dir(ctx.settings, cohort_id)).with_groupings(groupings)
    wanted, task = manifest.input, manifest.task
    if arrays.task != task:
        raise InputError(
            f"model {model_id} predicts a {task.kind} task ({', '.join(task.classes) or 'label 1'}); cohort "
            f"{cohort_id} is {arrays.task.kind} ({', '.join(arrays.task.classes) or 'label 1'}): the classes "
            "and their order must be the same"
        )
    if (arrays.channels, arrays.image_size) != (wanted.channels, wanted.height):
        raise InputError(
            f"model {model_id} takes {wanted.height} px images with {wanted.channels} channel(s); cohort "
            f"{cohort_id} holds {arrays.image_size} px images with {arrays.channels}"
        )
    index = np.arange(len(arrays.labels)) if split == "all" else arrays.indices(split)
    if len(index) == 0:
        raise InputError(f"cohort {cohort_id} has no items in split {split!r}")
    probs = []
    for start in range(0, len(index), BATCH):
        ctx.check_cancel()
        batch = manifest.preprocessing.normalise(np.asarray(arrays.images[index[start : start + BATCH]]))
        (logits,) = session.run(list(full.outputs), {full.inputs[0]: batch})
        probs.append(probabilities(task.kind, logits))
        ctx.progress({"done": start + len(batch), "total": len(index), "fraction": (start + len(batch)) / len(index)})
    scores = np.concatenate(probs)
    operating = manifest.decision if manifest.decision is not None else manifest.operating_threshold
    assert operating is not None, "model.json gives a binary model a threshold and any other a decision"
    predictions = cohort_predictions(arrays, index, scores, operating, manifest.exit_thresholds, manifest.exit_costs)
    outcome = evaluate_predictions(
        predictions,
        attributes=list(arrays.attributes),
        settings=ctx.settings,
        intersections=intersections_to_report(attributes, ctx.config.get("report_intersections"), trained),
        trained_attributes=trained,
    )

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
