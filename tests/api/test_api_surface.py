"""What every client sees around the endpoints (issue 10, item 16): problem titles, error texts without
server paths, honest messages for non-finite numbers, a keyed and organisation-scoped ``/metrics``,
and interactive docs that load nothing from the internet."""

from __future__ import annotations

import json
import re
from pathlib import Path

from archives import TRAIN, make_zip, upload

from app.core.server_paths import hide_server_paths
from app.settings import Settings


def test_problem_titles_are_the_status_reason_phrases(client, keys):
    headers = keys.headers()
    expected = {
        405: (client.delete("/v1/keys", headers=headers), "Method Not Allowed"),
        404: (client.get("/v1/cohorts/coh_nope", headers=headers), "Not Found"),
        401: (client.get("/v1/cohorts"), "Unauthorized"),
        422: (client.post("/v1/compare", headers=headers, json={}), "Unprocessable Content"),
    }
    for status, (response, title) in expected.items():
        assert response.status_code == status
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["title"] == title
    assert expected[405][0].headers["allow"]  # the headers of the 405 are kept


def test_training_errors_name_no_server_path_and_non_finite_numbers_honestly(client, keys, settings, run_jobs):
    headers = keys.headers()
    cohort_id = upload(client, headers, make_zip(60)).json()["id"]
    run_jobs()
    weights = settings.data_dir / "weights"
    weights.mkdir(parents=True)
    (weights / "w.pt").write_bytes(b"not really weights")

    def train(**config):  # json.dumps writes NaN and Infinity as the bare tokens a client may send
        body = json.dumps({"cohort_id": cohort_id, **TRAIN, **config})
        # one request id for all: the answers are compared whole, and each problem names its request
        fixed = {**headers, "content-type": "application/json", "X-Request-ID": "probe"}
        return client.post("/v1/jobs", headers=fixed, content=body)

    answers = {name: train(pretrained_weights=name) for name in ("nope.pt", "/etc/passwd", "/etc/no-such-file")}
    for name, response in answers.items():
        assert response.status_code == 422, response.text
        assert str(settings.data_dir.resolve()) not in response.text and "weights folder" in response.text
        # a file outside the folder gets the same answer whether it exists or not: no probing the server
        assert response.text.replace(name, "NAME") == answers["nope.pt"].text.replace("nope.pt", "NAME")
    assert train(pretrained_weights="w.pt").status_code == 202  # found in the folder: queued (fails later)

    for config in ({"lr": float("nan")}, {"lr": float("inf")}, {"exit_weights": [1, 1, 1, 1, float("nan")]}):
        response = train(**config)
        assert response.status_code == 422, response.text
        assert "finite" in response.text and "less than or equal" not in response.text, response.text


def test_server_paths_are_replaced_by_their_last_component(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", model_dir=Path("models"))
    cases = {
        f"[Errno 2] No such file or directory: '{tmp_path}/data/cohorts/coh_1/files/a.png'": (
            "[Errno 2] No such file or directory: 'a.png'"
        ),
        f"no complete image cache in {tmp_path}/data/cohorts/coh_1/cache.": "no complete image cache in cache.",
        "model version folder models/mdl_1 already exists": "model version folder mdl_1 already exists",
        "it is registered when the job succeeds (GET /v1/jobs/job_1)": "unchanged",
        "compare two models": "unchanged",
    }
    for text, expected in cases.items():
        assert hide_server_paths(text, settings) == (text if expected == "unchanged" else expected)


def test_metrics_need_a_key_and_show_only_the_callers_organisation(client, keys):
    ours, theirs = keys.headers("predictor", org="St Elsewhere"), keys.headers("auditor", org="General")
    for _ in range(2):
        assert upload(client, theirs, make_zip(20)).status_code == 202  # two queued ingestion jobs elsewhere
    assert client.get("/metrics").status_code == 401
    assert 'fairaudit_jobs{kind="ingest",status="queued"} 2' in client.get("/metrics", headers=theirs).text
    mine = client.get("/metrics", headers=ours)
    assert mine.status_code == 200 and "fairaudit_jobs{" not in mine.text, mine.text


def test_docs_load_only_local_assets(client):
    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200
        assert not re.search(r"(?:https?:)?//", html.text), f"{page} must not fetch from another host"
        assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert any(a.endswith(".js") for a in assets)
        for asset in assets:
            assert client.get(asset).status_code == 200, asset
    bundle = client.get(next(a for a in re.findall(r'src="([^"]+)"', client.get("/docs").text)))
    assert "isOAS31" in bundle.text, "Swagger UI must render OpenAPI 3.1 (what FastAPI serves); 4.x cannot"
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
