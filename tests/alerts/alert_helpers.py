"""Live outcomes with a chosen false-positive rate per group, and a real local webhook receiver."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from monitoring_helpers import served_rows, store

BAND = {"check": "group_band", "attribute": "sex", "metric": "fpr", "max_spread": 0.3, "min_n": 10}
PER_GROUP = 40  # 20 negatives and 20 positives of each sex per batch


def post_batch(client, headers, model_id: str, org_id: str, fpr: dict[str, float]) -> None:
    """Serve PER_GROUP predictions per sex and post their outcomes: every positive is caught, and a
    ``fpr[sex]`` share of the negatives is flagged (score 0.8 against the threshold 0.5)."""
    scores, demographics, truth = [], [], []
    for sex, rate in fpr.items():
        n_neg = PER_GROUP // 2
        flagged = round(rate * n_neg)
        scores += [0.8] * flagged + [0.2] * (n_neg - flagged) + [0.8] * (PER_GROUP - n_neg)
        truth += [0] * n_neg + [1] * (PER_GROUP - n_neg)
        demographics += [{"sex": sex}] * PER_GROUP
    ids = store(client.app.state.row_writer, served_rows(model_id, org_id, np.array(scores), demographics))
    for prediction_id, outcome in zip(ids, truth, strict=True):
        response = client.post(f"/v1/predictions/{prediction_id}/outcome", headers=headers, json={"outcome": outcome})
        assert response.status_code == 200


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 answering the statuses of ``script`` in turn (then the last one)."""

    script: list[int]
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                status = receiver.script[min(len(receiver.requests), len(receiver.script)) - 1]
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"thanks" if status < 300 else b"try again" * 1000)
                receiver.arrived.set()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
