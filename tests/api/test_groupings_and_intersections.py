"""Groupings a user defines and the intersections a report shows, over HTTP on both databases: checked
against the cohort's values at upload (422 naming the field, nothing left behind), usable as training
groups, and reported with the training groups' intersection always among the intersections."""

from __future__ import annotations

from archives import CONFIG, TRAIN, make_zip, upload
from audit_helpers import post_audit, predictions_csv
from sqlalchemy import func, select

from app.cohorts.models import Cohort

AGE_BAND = {"name": "age_band", "attribute": "age_group", "bands": [[0, 60], [60, None]]}
SEX_CODE = {"name": "sex_code", "attribute": "sex", "groups": {"F": ["female"], "M": ["male"]}}


def intersections(report: dict) -> list[str]:
    return [g["attribute"] for g in report["groupings"] if g["kind"] == "intersection"]


def test_groupings_that_do_not_fit_the_cohort_are_refused_by_field(client, keys, settings, session_factory):
    headers = keys.headers()
    cases = {
        "groupings.0.bands": {**AGE_BAND, "bands": [[0, 50], [50, None]]},  # 40-59 falls across 50
        "groupings.0.groups": {**SEX_CODE, "groups": {"F": ["female"]}},  # male in no group
        "groupings.0.attribute": {**SEX_CODE, "attribute": "race"},
        "groupings.0.name": {**SEX_CODE, "name": "sex"},
    }
    for field, grouping in cases.items():
        response = upload(client, headers, make_zip(20), {**CONFIG, "groupings": [grouping]})
        assert response.status_code == 422, (field, response.json())
        assert [e["field"] for e in response.json()["errors"]] == [field], response.json()
    twice = upload(
        client,
        headers,
        make_zip(20),
        {**CONFIG, "groupings": [{**SEX_CODE, "groups": {"F": ["female", "male"], "M": ["male"]}}]},
    )
    assert twice.status_code == 422 and "two groups" in twice.text
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Cohort)) == 0
    assert not any((settings.data_dir / "cohorts").glob("*/*")), "a refused upload leaves no files"


def test_groupings_train_and_report_with_the_trained_intersection(client, keys, run_jobs):
    headers = keys.headers()
    cohort = upload(client, headers, make_zip(80), {**CONFIG, "groupings": [AGE_BAND]})
    assert cohort.status_code == 202, cohort.json()
    run_jobs()
    cohort = client.get(f"/v1/cohorts/{cohort.json()['id']}", headers=headers).json()
    assert cohort["status"] == "ready" and cohort["config"]["groupings"][0]["name"] == "age_band"
    band_cells = cohort["summary"]["groupings"]["age_band"]["cells"]
    assert {c["group"]["age_band"] for c in band_cells} == {"0-59", ">=60"}

    bad = client.post(
        "/v1/jobs",
        headers=headers,
        json={**TRAIN, "cohort_id": cohort["id"], "report_intersections": [["sex", "site"]]},
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "report_intersections.0"
    unfit = client.post(
        "/v1/jobs",
        headers=headers,
        json={**TRAIN, "cohort_id": cohort["id"], "groupings": [{**SEX_CODE, "groups": {"F": ["female", "other"]}}]},
    )
    assert unfit.status_code == 422 and [e["field"] for e in unfit.json()["errors"]] == [
        "groupings.0.groups",
        "groupings.0.groups",
    ]

    body = {
        **TRAIN,
        "epochs": 1,
        "cohort_id": cohort["id"],
        "groupings": [SEX_CODE],  # a training config's own grouping, as a study's configs may declare
        "sensitive_attributes": ["sex_code", "age_band"],
        "report_intersections": [["sex", "age_group"]],
    }
    job = client.post("/v1/jobs", headers=headers, json=body)
    assert job.status_code == 202, job.json()
    run_jobs(timeout=300)
    job = client.get(f"/v1/jobs/{job.json()['id']}", headers=headers).json()
    assert job["status"] == "succeeded", job["error"]
    evaluation = client.get(f"/v1/evaluations/{job['result']['evaluation_id']}", headers=headers).json()
    report = evaluation["report"]
    assert report["config"]["trained_attributes"] == ["sex_code", "age_band"]
    assert report["config"]["attributes"] == ["age_group", "sex", "age_band", "sex_code"]
    assert intersections(report) == ["sex_code×age_band", "sex×age_group"], "trained first, then the requested"
    trained = next(g for g in report["groupings"] if g["attribute"] == "sex_code×age_band")
    assert set(trained["groups"]) <= {f"sex_code={s}, age_band={a}" for s in "FM" for a in ("0-59", ">=60")}
    rows = client.get(
        f"/v1/evaluations/{evaluation['id']}/metrics",
        headers=headers,
        params={"attribute": "age_band", "metric": "n", "exit": "policy"},
    ).json()["items"]
    assert {r["group"] for r in rows} <= {"0-59", ">=60"} and rows
    page = client.get(f"/v1/evaluations/{evaluation['id']}/report", headers=headers).text
    assert "sex_code × age_band" in page

    # external validation: requested intersections are checked against the cohort and the model's groupings
    model_id = job["result"]["model_version_id"]
    refused = client.post(
        f"/v1/models/{model_id}/evaluate",
        headers=headers,
        json={"cohort_id": cohort["id"], "report_intersections": [["sex", "site"]]},
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "report_intersections.0"
    started = client.post(
        f"/v1/models/{model_id}/evaluate",
        headers=headers,
        json={"cohort_id": cohort["id"], "split": "test", "report_intersections": []},
    )
    assert started.status_code == 202, started.json()
    run_jobs(timeout=120)
    external = client.get(f"/v1/jobs/{started.json()['id']}", headers=headers).json()
    assert external["status"] == "succeeded", external["error"]
    report = client.get(f"/v1/evaluations/{external['result']['evaluation_id']}", headers=headers).json()["report"]
    assert intersections(report) == ["sex_code×age_band"], "none requested: the trained one only"


def test_audits_report_the_intersections_asked_for(client, keys):
    headers = keys.headers()
    config = {"name": "vendor", "sensitive_attributes": ["sex", "site"], "threshold": 0.5}
    default = post_audit(client, headers, predictions_csv(n=200), config).json()
    assert intersections(default["report"]) == ["sex×site"]
    none = post_audit(client, headers, predictions_csv(n=200), {**config, "report_intersections": []}).json()
    assert intersections(none["report"]) == []
    bad = post_audit(client, headers, predictions_csv(n=200), {**config, "report_intersections": [["sex", "age"]]})
    assert bad.status_code == 422 and "report_intersections" in bad.text
