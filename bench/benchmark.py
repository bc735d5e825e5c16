"""Benchmark of the local system (not a test): run with ``make bench`` after ``make up``.

Measures, on 127.0.0.1 only and for a bounded time:
1. requests/s and p50/p99 latency of ``GET /api/movies/<id>`` straight to inventory and through the gateway;
2. the time for 10,000 ``POST /api/billing`` to become rows in billing_db, and that none is lost.

Load comes from wrk (Debian package ``wrk``), which costs far less CPU than a Python client, so the figures
describe the services rather than the load generator. Results are printed as a Markdown table for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from local_system import LocalSystem  # noqa: E402 - the repository root is put on the path just above

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * _UNITS[unit]


def run_wrk(url: str, seconds: int, connections: int, threads: int = 2, script: list[str] | None = None) -> dict:
    """Run wrk and return requests/s, p50/p99 in ms and the count of non-2xx answers."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        argv += ["-s", script[0], url, "--", *script[1:]]
    else:
        argv.append(url)
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": _ms(re.search(r"50%\s+(\S+)", out).group(1)),
        "p99": _ms(re.search(r"99%\s+(\S+)", out).group(1)),
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


def count_orders(system: LocalSystem, marker: str) -> int:
    """Rows in billing_db.orders for ``marker`` (via psql, so the benchmark needs no driver of its own)."""
    argv, env = system.postgres.psql_argv("billing_db")
    sql = f"SELECT count(*) FROM orders WHERE user_id = '{marker}'"  # noqa: S608 - marker is hex made here
    out = subprocess.run([*argv, "-tAc", sql], check=True, capture_output=True, text=True, env=env).stdout
    return int(out.strip() or 0)


def bench_orders(system: LocalSystem, gateway: str, total: int, connections: int) -> dict:
    """POST ``total`` orders through the gateway with wrk; time until all are rows."""
    marker = f"bench-{uuid.uuid4().hex[:10]}"
    script = str(Path(__file__).with_name("post_orders.lua"))
    started = time.monotonic()
    result = run_wrk(f"{gateway}/api/billing", 120, connections, script=[script, str(total), marker, "2"])
    posted = time.monotonic() - started
    accepted = result["requests"] - result["non_2xx"]
    deadline = time.monotonic() + 120
    landed = count_orders(system, marker)
    while landed < accepted and time.monotonic() < deadline:
        time.sleep(0.05)
        landed = count_orders(system, marker)
    return {
        "posted_s": posted,
        "landed_s": time.monotonic() - started,
        "accepted": accepted,
        "landed": landed,
        "non_2xx": result["non_2xx"],
        "rps": result["rps"],
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
    run_wrk(urls["gateway"] + path, 2, args.connections)
    proxied = run_wrk(urls["gateway"] + path, args.seconds, args.connections)
    orders = bench_orders(system, urls["gateway"], args.orders, 64)

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line), "?")
    print(f"\nMachine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, "
          f"Python {platform.python_version()}; load generator wrk on the same machine.\n")
    print("| measurement | req/s | p50 | p99 |")
    print("|---|---|---|---|")
    print(f"| GET {path} direct to inventory | {direct['rps']:.0f} | {direct['p50']:.1f} ms | {direct['p99']:.1f} ms |")
    print(f"| GET {path} through the gateway | {proxied['rps']:.0f} | {proxied['p50']:.1f} ms "
          f"| {proxied['p99']:.1f} ms |")
    print(f"\nGateway/inventory rate: {proxied['rps'] / direct['rps']:.0%}")
    print(f"{args.orders} POST /api/billing: all answered in {orders['posted_s']:.2f} s "
          f"({orders['rps']:.0f} req/s), {orders['accepted']} accepted, {orders['non_2xx']} refused; "
          f"{orders['landed']} rows in billing_db after {orders['landed_s']:.2f} s "
          f"({'nothing lost' if orders['landed'] == orders['accepted'] else 'ROWS MISSING'}).")
    if args.json:
        print(json.dumps({"direct": direct, "gateway": proxied, "orders": orders}, indent=2))
    return 0 if orders["landed"] == orders["accepted"] else 1


if __name__ == "__main__":
    sys.exit(main())
