"""Multi-class and multi-label end to end, the way a hospital team runs them: upload a synthetic cohort
of the task, train through the job queue (a real job process), read the task's report and its HTML
page, then predict with the exported model and post an outcome that monitoring counts."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
from archives import TRAIN

from app.cohorts.synth import cxr_findings, derm

SIZE = 16


def upload_archive(client, headers, archive: Path, config: dict) -> dict:
    with archive.open("rb") as fh:
        response = client.post(
            "/v1/cohorts",
            headers=headers,
            files={"archive": ("cohort.zip", fh)},
            data={"config": json.dumps({"name": "task cohort", "image_size": SIZE, **config})},
        )
    assert response.status_code == 202, response.json()
    return dict(response.json())


def train(client, headers, run_jobs, cohort_id: str, **overrides: object) -> dict:
    body = {**TRAIN, "cohort_id": cohort_id, "epochs": 1, **overrides}
    response = client.post("/v1/jobs", headers=headers, json=body)
    assert response.status_code == 202, response.json()
    run_jobs(timeout=600)
    job = client.get(f"/v1/jobs/{response.json()['id']}", headers=headers).json()
    assert job["status"] == "succeeded", job["error"]
    return dict(job)


def first_images(archive: Path, count: int, suffix: str) -> list[bytes]:
    with zipfile.ZipFile(archive) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(suffix))[:count]
        return [zf.read(n) for n in names]


def predict(client, headers, model_id: str, images: list[bytes], demographics: list[dict]) -> dict:
    files = [("images", (f"img{i}", data, "application/octet-stream")) for i, data in enumerate(images)]
    response = client.post(
        f"/v1/models/{model_id}/predict",
        headers=headers,
        files=files,
        data={"demographics": json.dumps(demographics)},
    )
    assert response.status_code == 200, response.json()
    return dict(response.json())


def test_a_multiclass_cohort_trains_reports_and_serves_its_classes(client, keys, run_jobs, tmp_path: Path) -> None:
    headers = keys.headers()
    archive = derm.write_derm_archive(tmp_path / "derm.zip", n=240, seed=4, image_size=32, task="multiclass")
    cohort = upload_archive(client, headers, archive, derm.cohort_config(3))
    run_jobs()
    cohort = client.get(f"/v1/cohorts/{cohort['id']}", headers=headers).json()
    assert cohort["status"] == "ready", cohort["errors"]
    classes = cohort["classes"]
    assert cohort["task"] == "multiclass" and sorted(classes) == ["benign", "malignant", "non-neoplastic"]

    job = train(client, headers, run_jobs, cohort["id"], sensitive_attributes=["skin_tone"], class_balanced=True)
    evaluation = client.get(f"/v1/evaluations/{job['result']['evaluation_id']}", headers=headers).json()
    report = evaluation["report"]
    assert report["task"] == "multiclass" and report["classes"] == classes
    policy = next(e for e in report["evaluations"] if e["exit"] == "policy")
    overall = next(g for g in policy["groupings"] if g["kind"] == "overall")["groups"][0]
    assert sum(map(sum, overall["confusion"])) == report["population"]["n"]
    tone = next(g for g in policy["groupings"] if g["attribute"] == "skin_tone")
    assert set(tone["gaps"]) >= {"eopp0", "eopp1", "eodd", "macro_f1_diff"}
    page = client.get(f"/v1/evaluations/{evaluation['id']}/report", headers=headers)
    assert page.status_code == 200 and "Eopp1" in page.text

    model_id = job["result"]["model_version_id"]
    images = first_images(archive, 3, ".jpg")
    body = predict(client, headers, model_id, images, [{"skin_tone": "dark"}] * len(images))
    assert body["task"] == "multiclass" and body["classes"] == classes
    assert body["evaluation_id"] == evaluation["id"]
    for p in body["predictions"]:
        probs = np.array([p["probabilities"][c] for c in classes])
        assert abs(probs.sum() - 1) < 1e-6 and p["predicted_class"] == classes[int(np.argmax(probs))]

    prediction_id = body["predictions"][0]["id"]
    answer = client.post(f"/v1/predictions/{prediction_id}/outcome", headers=headers, json={"outcome": classes[0]})
    assert answer.status_code == 200, answer.json()
    refused = client.post(f"/v1/predictions/{prediction_id}/outcome", headers=headers, json={"outcome": "melanoma?"})
    assert refused.status_code == 422 and "melanoma?" in refused.text


def test_a_multilabel_cohort_trains_reports_each_finding_and_serves_decisions(
    client, keys, run_jobs, tmp_path: Path
) -> None:
    headers = keys.headers()
    archive = cxr_findings.write_findings_archive(tmp_path / "cxr.zip", n=160, seed=2, findings=2, image_size=32)
    cohort = upload_archive(client, headers, archive, cxr_findings.cohort_config(2))
    run_jobs()
    cohort = client.get(f"/v1/cohorts/{cohort['id']}", headers=headers).json()
    assert cohort["status"] == "ready", cohort["errors"]
    findings = cohort["classes"]
    assert cohort["task"] == "multilabel" and len(findings) == 2

    job = train(client, headers, run_jobs, cohort["id"], method="erm", sensitive_attributes=["sex"])
    evaluation = client.get(f"/v1/evaluations/{job['result']['evaluation_id']}", headers=headers).json()
    report = evaluation["report"]
    assert report["task"] == "multilabel" and report["findings"] == findings
    assert [row["finding"] for row in report["summary"]] == findings
    for name in findings:
        assert report["per_finding"][name]["population"]["n"] == report["population"]["per_finding"][name]["n"]
    page = client.get(f"/v1/evaluations/{evaluation['id']}/report", headers=headers)
    assert page.status_code == 200 and all(name in page.text for name in findings)
    assert page.text.count("Youden&#39;s J (largest TPR − FPR), chosen on the validation split") >= len(findings)

    images = first_images(archive, 2, ".dcm")
    body = predict(client, headers, job["result"]["model_version_id"], images, [{"sex": "female"}] * len(images))
    assert body["task"] == "multilabel" and body["findings"] == findings
    for p in body["predictions"]:
        for name in findings:
            out = p["findings"][name]
            assert out["decision"] == int(out["probability"] >= out["threshold"])
    outcome = {"findings": {findings[0]: 1, findings[1]: None}}
    answer = client.post(f"/v1/predictions/{body['predictions'][0]['id']}/outcome", headers=headers, json=outcome)
    assert answer.status_code == 200, answer.json()


def test_the_binary_cohort_config_still_reads_a_multiclass_archive_as_binary(client, keys, run_jobs, tmp_path) -> None:
    """The multi-class derm archive keeps the Fitzpatrick layout, so the binary preset still loads it."""
    headers = keys.headers()
    archive = derm.write_derm_archive(tmp_path / "derm.zip", n=60, seed=1, image_size=32, task="multiclass")
    cohort = upload_archive(client, headers, archive, {"preset": "fitzpatrick17k"})
    run_jobs()
    cohort = client.get(f"/v1/cohorts/{cohort['id']}", headers=headers).json()
    assert cohort["status"] == "ready" and cohort["task"] == "binary" and cohort["classes"] == []
