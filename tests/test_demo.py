"""``fairaudit demo`` against a real ``fairaudit serve``: a small study of the baseline against the fair
model (pooled out-of-fold table, verdicts), then the policy and the gate on the study's final models,
then a prediction through the promoted alias. Shrunk (200 images at 16 px, 2 folds, 1 epoch) so it runs
in about a minute; the defaults are measured in the README."""

from __future__ import annotations

import re

import pytest
from live_server import live_server
from sqlalchemy import select

from app.demo import run_demo
from app.jobs.models import Job
from app.studies.models import Study


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the embedded shape `make serve` runs
def test_the_demo_runs_a_study_then_promotes_a_final_model_through_the_gate(settings, session_factory, capsys):
    with live_server(settings, extra_env={"FAIRAUDIT_MAX_CONCURRENT_JOBS": "2"}) as server:
        code = run_demo(server.url, n=200, image_size=16, settings=settings, folds=2, epochs=1)
    out = capsys.readouterr().out
    assert code == 0, out
    with session_factory() as session:
        (study,) = session.scalars(select(Study)).all()
        jobs = session.scalars(select(Job).where(Job.study_id == study.id, Job.kind == "train")).all()
    assert study.status == "succeeded" and len(jobs) == 2 * 2 + 2, "2 folds × 2 methods + 2 final models"
    assert f"study {study.id} (demo: erm vs fair_multi_exit_pairwise_eo): 6 training jobs" in out
    assert "verdicts of fair_multi_exit_pairwise_eo against erm (baseline): overall: " in out
    assert "policy version 1: 4 checks over skin_tone and skin_type" in out
    assert re.search(r"the gate (refuses|passes) (erm \(baseline\)|fair_multi_exit_pairwise_eo) \(mdl_", out), out
    finals = {job.model_version_id for job in jobs if job.config.get("fold_plan") is None}
    served = re.search(r"   model (mdl_\w+) \(sha256", out)
    assert served is not None and served.group(1) in finals, "the promoted model is one of the study's final models"
