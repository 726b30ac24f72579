"""Monitoring: outcomes posted for served predictions become subgroup metrics with intervals."""

from __future__ import annotations

from serving_helpers import multipart, noise_images


def _groups(metrics: list[dict], attribute: str) -> dict[str, dict]:
    grouping = next(g for g in metrics if g["attribute"] == attribute)
    return {g["group"]: g for g in grouping["groups"]}


def test_monitoring_reports_outcomes_by_group(client, served, keys):
    predictor = keys.headers(role="predictor")
    url = f"/v1/models/{served.id}"
    sexes = ["female", "male", None, "female"]
    ids = []
    for batch in range(6):
        demographics = [{"sex": s} if s else {} for s in sexes]
        response = client.post(
            f"{url}/predict", headers=predictor, **multipart(noise_images(4, seed=batch), demographics)
        )
        assert response.status_code == 200, response.json()
        ids += [p["id"] for p in response.json()["predictions"]]

    before = client.get(f"{url}/monitoring", headers=served.headers).json()
    assert before["status"] == "no_outcomes" and before["metrics"] is None
    assert before["n_predictions"] == 24 and before["n_with_outcome"] == 0 and sum(before["exit_counts"]) == 24
    (mix,) = before["demographics"]
    assert mix["attribute"] == "sex" and mix["n_missing"] == 6
    assert {g["group"]: (g["n"], g["fraction"]) for g in mix["groups"]} == {"female": (12, 0.5), "male": (6, 0.25)}

    for k, prediction_id in enumerate(ids[:20]):
        response = client.post(f"/v1/predictions/{prediction_id}/outcome", headers=predictor, json={"outcome": k % 2})
        assert response.status_code == 200 and response.json()["outcome_at"] is not None
    assert client.post(f"/v1/predictions/{ids[0]}/outcome", headers=predictor, json={"outcome": 2}).status_code == 422
    assert client.post("/v1/predictions/prd_nope/outcome", headers=predictor, json={"outcome": 1}).status_code == 404

    after = client.get(f"{url}/monitoring", headers=served.headers).json()
    assert after["status"] == "ok" and after["n_with_outcome"] == 20
    metrics = after["metrics"]
    assert _groups(metrics, "overall")["all"]["n"] == 20
    groups = _groups(metrics, "sex")
    assert {name: g["n"] for name, g in groups.items()} == {"female": 10, "male": 5}
    male, female = groups["male"]["metrics"], groups["female"]["metrics"]
    assert (male["tpr"]["status"], male["tpr"]["n"]) == ("insufficient", 5)  # fewer than min_group_count
    assert male["fpr"]["status"] == "undefined"  # every male outcome was positive
    accuracy = female["accuracy"]
    assert accuracy["status"] == "ok" and accuracy["ci_low"] <= accuracy["value"] <= accuracy["ci_high"]
    assert client.get(f"{url}/monitoring", headers=predictor).status_code == 403
