"""Per-caller throttling in real gateway processes (gunicorn) sharing the test run's redis-server.

Two gateways (ports 13097 and 13098) run with the same limits: reads 0.1/s, writes 0.1/s, burst 3, so a
caller gets 3 of each before a 429 and a token back only every 10 s (no test waits for one). Each test uses
its own caller (token ``sub``), so buckets never carry over between tests. A third gateway (13096) has
throttling off and a store address where the test listens, to prove it never connects.
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
import uuid

import pytest
import requests

from local_system.redis_server import GATEWAY_USER
from tests.integration.gateway_process import start_gateway, stop_gateways
from tests.integration.test_gateway_auth import (  # noqa: F401 - fixtures used by name
    BROWSER_CLIENT,
    ISSUER,
    MACHINE_CLIENT,
    POOL_ID,
    SCOPE_PREFIX,
    bearer,
    keys,
    mint,
    signing_key,
)

PORTS = (13097, 13098)
UNTHROTTLED_PORT = 13096
BURST = 3


def _start_gateway(system, keys, port: int, name: str, **overrides) -> subprocess.Popen:  # noqa: F811
    settings = {
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "4",
        "AUTH_REQUIRED": "true",
        "AUTH_ISSUER": ISSUER,
        "AUTH_JWKS_URL": f"{keys.url}/{POOL_ID}/.well-known/jwks.json",
        "AUTH_ALLOWED_CLIENT_IDS": f"{MACHINE_CLIENT},{BROWSER_CLIENT}",
        "AUTH_SCOPE_PREFIX": SCOPE_PREFIX,
        "RATE_LIMIT_READS_PER_SECOND": "0.1",
        "RATE_LIMIT_WRITES_PER_SECOND": "0.1",
        "RATE_LIMIT_BURST": str(BURST),
        "RATE_LIMIT_STORE_RETRY_SECONDS": "1",
    }
    return start_gateway(system, port, name, **{**settings, **overrides})


@pytest.fixture(scope="module")
def gateways(keys, signing_key, redis_store, test_infrastructure):  # noqa: F811
    """Two throttled gateway processes sharing the test redis-server; their base URLs."""
    test_infrastructure.start_service("inventory")
    processes = [
        _start_gateway(test_infrastructure, keys, port, f"gateway-ratelimit-{port}") for port in PORTS
    ]
    yield [f"http://127.0.0.1:{port}" for port in PORTS]
    stop_gateways(*processes)


def _token(signing_key, scope: str = "movies.read") -> str:  # noqa: F811
    """A token of a caller of its own (a fresh ``sub``)."""
    return mint(signing_key, sub=f"caller-{uuid.uuid4()}", scope=" ".join(f"{SCOPE_PREFIX}{s}" for s in scope.split()))


def _metric(base: str, name: str, **labels: str) -> float:
    """The value of one sample on ``/metrics`` (0 when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in requests.get(f"{base}/metrics", timeout=5).text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return 0.0


def test_a_burst_over_the_limit_gets_429_with_the_headers(gateways, signing_key):  # noqa: F811
    """Three reads pass, counting RateLimit-Remaining down; the fourth is 429 with Retry-After, the
    RateLimit-* headers and a JSON body."""
    headers = bearer(_token(signing_key))
    answers = [requests.get(f"{gateways[0]}/api/movies", headers=headers, timeout=5) for _ in range(BURST + 1)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    refused = answers[-1]
    assert refused.headers["RateLimit-Limit"] == str(BURST)
    assert 1 <= int(refused.headers["Retry-After"]) <= 10
    assert 1 <= int(refused.headers["RateLimit-Reset"]) <= 30
    assert refused.headers["Content-Type"].startswith("application/json")
    body = refused.json()
    assert body["error"].startswith("too many requests")
    assert body["retry_after_seconds"] == int(refused.headers["Retry-After"])


def test_reads_and_writes_have_separate_budgets(gateways, signing_key):  # noqa: F811
    """A caller whose reads are used up can still write (the write reaches inventory, which judges it)."""
    headers = bearer(_token(signing_key, "movies.read movies.write"))
    for _ in range(BURST):
        requests.get(f"{gateways[0]}/api/movies", headers=headers, timeout=5)
    assert requests.get(f"{gateways[0]}/api/movies", headers=headers, timeout=5).status_code == 429
    write = requests.post(f"{gateways[0]}/api/movies", headers=headers, json={"title": ""}, timeout=5)
    assert write.status_code == 400  # inventory's validation answer: the write was not throttled
    assert write.headers["RateLimit-Remaining"] == str(BURST - 1)


def test_the_limit_holds_across_two_gateway_processes(gateways, signing_key):  # noqa: F811
    """Two requests on one gateway and one on the other use up the caller's burst of 3 on both."""
    headers = bearer(_token(signing_key))
    first, second = gateways
    assert requests.get(f"{first}/api/movies", headers=headers, timeout=5).status_code == 200
    assert requests.get(f"{first}/api/movies", headers=headers, timeout=5).status_code == 200
    assert requests.get(f"{second}/api/movies", headers=headers, timeout=5).status_code == 200
    assert requests.get(f"{second}/api/movies", headers=headers, timeout=5).status_code == 429
    assert requests.get(f"{first}/api/movies", headers=headers, timeout=5).status_code == 429


def test_with_the_store_down_requests_are_served_and_counted(gateways, signing_key, test_infrastructure):  # noqa: F811
    """redis-server stopped: more requests than the burst all get 200 (fail open), no RateLimit headers, and
    the store_unavailable metric counts them; with the store back, throttling resumes."""
    headers = bearer(_token(signing_key))
    base = gateways[0]
    before = _metric(base, "gateway_rate_limit_decisions_total", budget="read", outcome="store_unavailable")
    test_infrastructure.stop_service("redis")
    try:
        answers = [requests.get(f"{base}/api/movies", headers=headers, timeout=5) for _ in range(BURST + 2)]
        assert [a.status_code for a in answers] == [200] * (BURST + 2)
        assert all("RateLimit-Limit" not in a.headers for a in answers)
        after = _metric(base, "gateway_rate_limit_decisions_total", budget="read", outcome="store_unavailable")
        assert after - before == BURST + 2
    finally:
        test_infrastructure.start_service("redis")
    time.sleep(1.2)  # RATE_LIMIT_STORE_RETRY_SECONDS: the circuit lets the next request ask the store again
    statuses = [requests.get(f"{base}/api/movies", headers=headers, timeout=5).status_code for _ in range(BURST + 1)]
    assert statuses.count(429) >= 1


@pytest.fixture
def silent_store():
    """A TCP listener where a store would be; counts the connections anyone opens to it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []

    def accept():
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1], accepted
    listener.close()
    for connection in accepted:
        connection.close()


def test_throttling_off_never_connects_to_the_store(keys, signing_key, silent_store, test_infrastructure):  # noqa: F811
    """Rates 0 (the default): a burst of requests passes and the gateway opens no connection to the store."""
    port, accepted = silent_store
    test_infrastructure.start_service("inventory")
    process = _start_gateway(
        test_infrastructure, keys, UNTHROTTLED_PORT, "gateway-ratelimit-off",
        RATE_LIMIT_READS_PER_SECOND="0", RATE_LIMIT_WRITES_PER_SECOND="0",
        RATE_LIMIT_STORE_URL=f"redis://127.0.0.1:{port}/0", RATE_LIMIT_STORE_USER=GATEWAY_USER,
    )
    try:
        headers = bearer(_token(signing_key))
        answers = [requests.get(f"http://127.0.0.1:{UNTHROTTLED_PORT}/api/movies", headers=headers, timeout=5)
                   for _ in range(BURST + 2)]
        assert [a.status_code for a in answers] == [200] * (BURST + 2)
        assert all("RateLimit-Limit" not in a.headers for a in answers)
        assert accepted == []
    finally:
        stop_gateways(process)
