"""The audit job: the report on a large uploaded predictions file, computed outside the request.

The request parsed and checked the file, fixed the decision thresholds and stored the predictions beside an
evaluation in ``running``; this computes the report (the bootstrap is the costly part, in time and
memory) and stores it with its metric rows in the transaction that marks the job succeeded. If the job
fails or is cancelled, the transaction that ends it marks the evaluation ``failed`` with the job's reason
(``on_failure`` in ``app.jobs.handlers``), even when the job process died.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.core.errors import InputError
from app.fairness.audit_decision import AuditThreshold
from app.fairness.models import Evaluation
from app.fairness.schemas import AuditConfig
from app.fairness.service import audit_evaluation_config, audit_outcome
from app.fairness.storage import complete_evaluation, evaluation_dir, load_predictions
from app.jobs.context import Completion, JobContext


def run_audit_job(ctx: JobContext) -> Completion:
    evaluation_id = ctx.config["evaluation_id"]
    with ctx.session_factory() as session:
        evaluation = session.get(Evaluation, evaluation_id)
        if evaluation is None:
            raise InputError(f"evaluation {evaluation_id} no longer exists")
        config = AuditConfig.model_validate(evaluation.config["audit"])
        threshold = AuditThreshold(str(evaluation.config["threshold_source"]), evaluation.config.get("threshold_rule"))
    predictions = load_predictions(evaluation_dir(ctx.settings, evaluation_id))  # thresholds applied already
    ctx.progress({"fraction": 0.0, "rows": len(predictions.y_true)}, force=True)
    outcome = audit_outcome(predictions, config, threshold, ctx.settings)
    ctx.check_cancel()

    def register(session: Session) -> dict[str, Any]:
        complete_evaluation(
            session,
            evaluation_id,
            report=outcome.report,
            rows=outcome.rows,
            config=audit_evaluation_config(outcome, config),
        )
        return {"evaluation_id": evaluation_id}

    return Completion(result={"rows": len(predictions.y_true)}, register=register)
