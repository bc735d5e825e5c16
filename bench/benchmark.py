"""Benchmark of the local system (not a test): run with ``make bench`` after ``make up``.

Measures, on 127.0.0.1 only and for a bounded time:
1. requests/s and p50/p99 latency of ``GET /api/movies/<id>`` straight to inventory and through the gateway;
2. the time for 10,000 ``POST /api/billing`` to become rows in billing_db, and that none is lost.

Requests through the gateway carry a real access token from the local Cognito emulator, so the gateway's
figures include verifying it. Load comes from wrk (Debian package ``wrk``), which costs far less CPU than a
Python client, so the figures describe the services rather than the load generator. Results are printed as a
Markdown table for docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg2  # noqa: E402

from local_system import LocalSystem  # noqa: E402 - the repository root is put on the path just above

ORDER_CONNECTIONS = 64
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"cannot read wrk latency {text!r}")
    value, unit = match.groups()
    return float(value) * _UNITS[unit]


def run_wrk(
    url: str,
    seconds: int,
    connections: int,
    threads: int = 2,
    script: list[str] | None = None,
    token: str | None = None,
) -> dict:
    """Run wrk and return requests/s, p50/p99 in ms and the count of non-2xx answers."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if token:
        argv += ["-H", f"Authorization: Bearer {token}"]
    if script:
        argv += ["-s", script[0], url, "--", *script[1:]]
    else:
        argv.append(url)
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        # Anchored: "...  80.50%" also ends the Req/Sec line just above the latency distribution.
        "p50": _ms(re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE).group(1)),
        "p99": _ms(re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def _post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(  # noqa: S310 - our own local http:// URL
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our own local URL
        return json.loads(response.read())


def count_orders(conn, marker: str, after_id: int) -> int:
    """Rows for ``marker`` with an id above ``after_id``: a primary-key range scan, so polling it often does
    not load PostgreSQL (orders has no index on user_id, and the table grows with every run)."""
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM orders WHERE id > %s AND user_id = %s", (after_id, marker))
        return cur.fetchone()[0]


def bench_orders(system: LocalSystem, gateway: str, total: int, connections: int, token: str) -> dict:
    """POST orders through the gateway with wrk until ``total`` are rows in billing_db; time that.

    wrk posts continuously and counts the orders the gateway confirmed (200); it is interrupted once ``total``
    rows exist. A second later every confirmed order must be exactly one row: nothing lost, nothing doubled.
    """
    marker = f"bench-{uuid.uuid4().hex[:10]}"
    script = str(Path(__file__).with_name("post_orders.lua"))
    argv = ["wrk", "-t2", f"-c{connections}", "-d120s", "-H", f"Authorization: Bearer {token}",
            "-s", script, f"{gateway}/api/billing", "--", marker]
    conn = psycopg2.connect(system.database_dsn("billing_db"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT coalesce(max(id), 0) FROM orders")
        after_id = cur.fetchone()[0]
    started = time.monotonic()
    wrk = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    landed = 0
    try:
        while landed < total and time.monotonic() - started < 120 and wrk.poll() is None:
            time.sleep(0.02)
            landed = count_orders(conn, marker, after_id)
        elapsed = time.monotonic() - started
    finally:
        wrk.send_signal(signal.SIGINT)  # wrk stops and prints its summary, including our "accepted N"
        out, _ = wrk.communicate(timeout=30)
    accepted = int(re.search(r"^accepted (\d+)", out, re.MULTILINE).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    time.sleep(2.0)  # in-flight orders land; anything redelivered or doubled would show up as extra rows
    final_rows = count_orders(conn, marker, after_id)
    conn.close()
    return {
        "landed_s": elapsed,
        "landed": landed,
        "accepted": accepted,
        "refused": int(non_2xx.group(1)) if non_2xx else 0,
        "final_rows": final_rows,
    }


def main() -> int:
    """Parse arguments, make sure the system runs, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="duration of each GET measurement")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON too")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2

    system = LocalSystem(os.environ.get("LOCAL_PROFILE", "dev"))
    urls = system.up()
    movie = _post_json(f"{urls['inventory']}/api/movies", {"title": "Benchmark", "description": "bench"})
    path = f"/api/movies/{movie['id']}"
    run_wrk(urls["inventory"] + path, 2, args.connections)  # warm-up: connections, caches, JIT-free Python
    direct = run_wrk(urls["inventory"] + path, args.seconds, args.connections)
    token = system.token()  # a real token from the local Cognito emulator: the gateway verifies every request
    run_wrk(urls["gateway"] + path, 2, args.connections, token=token)
    proxied = run_wrk(urls["gateway"] + path, args.seconds, args.connections, token=token)
    orders = bench_orders(system, urls["gateway"], args.orders, ORDER_CONNECTIONS, token)

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line), "?")
    print(f"\nMachine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, "
          f"Python {platform.python_version()}; load generator wrk on the same machine.\n")
    print("| measurement | req/s | p50 | p99 |")
    print("|---|---|---|---|")
    print(f"| GET {path} direct to inventory | {direct['rps']:.0f} | {direct['p50']:.1f} ms | {direct['p99']:.1f} ms |")
    print(f"| GET {path} through the gateway | {proxied['rps']:.0f} | {proxied['p50']:.1f} ms "
          f"| {proxied['p99']:.1f} ms |")
    print(f"\nGateway/inventory rate: {proxied['rps'] / direct['rps']:.0%}")
    extra = orders["final_rows"] - orders["accepted"]
    # wrk is interrupted mid-flight: the gateway may have confirmed up to one order per connection whose answer
    # wrk never read. Those are extra rows, not duplicates (the message-id constraint forbids duplicates).
    consistent = 0 <= extra <= ORDER_CONNECTIONS
    print(f"POST /api/billing through the gateway (wrk, {ORDER_CONNECTIONS} connections): {args.orders} orders were "
          f"rows in billing_db after {orders['landed_s']:.2f} s ({args.orders / orders['landed_s']:.0f} orders/s "
          f"end to end). wrk counted {orders['accepted']} confirmed and {orders['refused']} refused orders; "
          f"billing_db then held {orders['final_rows']} rows ({extra} in flight when wrk was stopped): "
          f"{'nothing lost' if consistent else 'MISMATCH'}.")
    if args.json:
        print(json.dumps({"direct": direct, "gateway": proxied, "orders": orders}, indent=2))
    return 0 if consistent else 1


if __name__ == "__main__":
    sys.exit(main())
