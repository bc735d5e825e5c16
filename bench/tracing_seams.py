"""In-process cost of the gateway's tracing seams when a request is not sampled (not a test).

``PYTHONPATH=.:services .venv/bin/python -m bench.tracing_seams``: one server span, one proxy client span and
one ``traceparent`` injection per simulated request, under the SDK with a sampler that samples nothing (the
95 % of requests at the prod rate); prints the best of five rounds in microseconds per request.
"""

from __future__ import annotations

import time

from opentelemetry.sdk.trace import TracerProvider, sampling

from common import tracing

ROUNDS = 5
REQUESTS = 20_000


def one_request() -> None:
    """The seams one proxied GET passes through in the gateway."""
    current, token = tracing.start_server_span(
        "GET /api/movies/<id>", None, {"http.request.method": "GET", "url.path": "/api/movies/1"}
    )
    with tracing.span("GET inventory", tracing.CLIENT, {"server.address": "inventory"}):
        tracing.inject({})
    tracing.end_server_span(current, token, 200)


def main() -> None:
    """Measure and print."""
    tracing.use_provider(TracerProvider(sampler=sampling.ParentBased(sampling.TraceIdRatioBased(0.0))))
    for _ in range(2_000):  # warm-up
        one_request()
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(REQUESTS):
            one_request()
        best = min(best, time.perf_counter() - started)
    tracing.use_provider(None)
    print(f"{best / REQUESTS * 1e6:.1f} µs per unsampled request (server span + client span + traceparent)")


if __name__ == "__main__":
    main()
