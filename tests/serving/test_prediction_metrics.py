"""Predictions through the real route are counted by model and exit, in the caller's organisation only."""

from __future__ import annotations

from collections import Counter

from observability.exposition import samples
from serving_helpers import multipart, noise_images


def test_predictions_are_counted_by_model_and_exit_for_their_organisation_only(client, served, keys) -> None:
    predictor = keys.headers("predictor")
    answers = [
        client.post(f"/v1/models/{served.id}/predict", headers=predictor, **multipart(noise_images(n, seed=n)))
        for n in (3, 5)
    ]
    assert all(a.status_code == 200 for a in answers), [a.json() for a in answers]
    exits = Counter(p["exit_index"] for a in answers for p in a.json()["predictions"])
    mine = samples(client.get("/metrics", headers=predictor).text)
    counted = {k: v for k, v in mine.items() if k.startswith("fairaudit_predictions_total")}
    assert counted == {f'fairaudit_predictions_total{{exit="{e}",model="{served.id}"}}': n for e, n in exits.items()}
    elsewhere = client.get("/metrics", headers=keys.headers("predictor", org="General"))
    assert elsewhere.status_code == 200 and served.id not in elsewhere.text
