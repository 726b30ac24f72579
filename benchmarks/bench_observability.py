"""What the request instrumentation costs on every request (``app.observability``), in microseconds.

The hot path is a prediction: the middleware picks the request id, binds it for the logs, adds the
``X-Request-ID`` header, observes the latency histogram and (when INFO is enabled) writes one access
line; the route counts the images by exit. Measured in process on an ASGI app that answers at once,
with and without ``RequestObservationMiddleware``, so the difference is the middleware alone (the
best of ``--rounds`` rounds of ``--calls`` calls: the least disturbed by other processes).

    .venv/bin/python benchmarks/bench_observability.py
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import Receive, Scope, Send

from app.observability.logs import configure_logging
from app.observability.metrics import Telemetry
from app.observability.middleware import RequestObservationMiddleware

Call = Callable[[], Awaitable[None]]


class _Route:
    path = "/v1/models/{model_ref}/predict"


async def bare(scope: Scope, receive: Receive, send: Send) -> None:
    scope["route"] = _Route()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{}"})


def one_request(app: Any) -> Call:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/models/mdl_x/predict",
        "headers": [(b"authorization", b"Bearer x"), (b"x-request-id", b"bench-1")],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_: Any) -> None:
        return None

    return lambda: app(dict(scope), receive, send)


def best_us(call: Call, calls: int, rounds: int) -> float:
    async def run() -> float:
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(calls):
                await call()
            best = min(best, (time.perf_counter() - start) / calls)
        return best * 1e6

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    telemetry = Telemetry()
    observed = RequestObservationMiddleware(bare, telemetry)
    base = best_us(one_request(bare), args.calls, args.rounds)
    quiet = best_us(one_request(observed), args.calls, args.rounds)  # access log off (INFO disabled)
    configure_logging("json", stream=io.StringIO())
    logged = best_us(one_request(observed), args.calls, args.rounds)
    logging.getLogger().handlers.clear()
    exits = [0, 0, 1, 4]

    async def count() -> None:
        telemetry.count_predictions("org_1", "mdl_1", exits)

    counting = best_us(count, args.calls, args.rounds)
    plain = best_us(_plain_access_line(), args.calls, args.rounds)
    print(f"bare ASGI call                                   {base:7.2f} µs")
    print(f"+ request id, header, latency histogram          {quiet - base:7.2f} µs per request")
    print(f"+ the same with the JSON access line             {logged - base:7.2f} µs per request")
    print(f"count_predictions (4 images, 3 exits)            {counting:7.2f} µs per request")
    print(f"reference: a plain-text stdlib access line       {plain:7.2f} µs (what uvicorn's access log did)")


def _plain_access_line() -> Call:
    """uvicorn's access log, as ``fairaudit serve`` wrote it before: a stdlib record, a text formatter."""
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger = logging.getLogger("bench.uvicorn.access")
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    args = ("127.0.0.1:50000", "POST", "/v1/models/mdl_x/predict", "1.1", 200)

    async def line() -> None:
        logger.info('%s - "%s %s HTTP/%s" %d', *args)

    return line


if __name__ == "__main__":
    main()
