"""Benchmark of the ``make up`` system (not a test): ``make bench``, or ``python -m bench --help``.

One bounded run against 127.0.0.1 only, with wrk (installed from the distribution when missing):
1. ``GET /api/movies/<id>`` straight to inventory, then the same through the gateway with a real token from the
   local Cognito emulator (so the gateway/direct ratio comes from one run);
2. exactly N ``POST /api/billing`` through the gateway (bench/orders.lua), then waiting until N rows are in
   billing_db: time from the first request, none lost (count), none doubled (distinct message ids);
3. the same with N purchases of one copy (the saga: billing, inventory, billing), waiting until every one is
   confirmed or rejected.
For each run: req/s, p50/p99, and CPU ms per request of every part (utime + stime from /proc of each part's
processes, found through the local system's pid files and parent links, before and after the run). At the
end: RSS/PSS of every part. Prints a Markdown report and writes the result as JSON (bench/results/).

(Over 250 lines: the run's steps in their order, read top to bottom; measuring is in procstat.py and wrk.py,
the report in report.py.)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from bench import procstat, report
from bench import wrk as wrk_tool
from bench.wrk import BenchError, Load
from local_system import LocalSystem
from local_system.processes import LocalSystemError
from local_system.profiles import SERVICES

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
ORDERS_SCRIPT = Path(__file__).resolve().with_name("orders.lua")
#: Parts whose CPU is measured (the services, the broker, the database).
PARTS = ("gateway", "inventory", "billing", "rabbitmq", "postgres")
#: Upper bound of the orders run: wrk's duration and the wait for rows (the run normally ends far sooner).
ORDERS_LIMIT_S = 120
POLL_S = 0.05
#: billing's values of orders.purchase_status for a settled purchase (services/billing/store.py).
PURCHASE_CONFIRMED, PURCHASE_REJECTED = "confirmed", "rejected"


def _children_cpu_ms() -> float:
    """CPU ms of our finished children (wrk): counted from rusage, the client's own cost."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * 1000.0


class Sampler:
    """CPU of each part's processes between ``start()`` and ``stop(requests)``.

    ``exclude``: pids not to count (the PostgreSQL backend serving the benchmark's own polling connection).
    """

    def __init__(self, system: LocalSystem, exclude: frozenset[int] = frozenset()):
        self.system = system
        self.exclude = exclude

    def pids(self) -> dict[str, list[int]]:
        """Current pids of every part (leader first)."""
        return {part: [pid for pid in self.system.process_ids(part) if pid not in self.exclude] for part in PARTS}

    def start(self) -> None:
        """Take the 'before' sample."""
        self._pids = self.pids()
        self._before = {part: procstat.cpu_ticks(pids) for part, pids in self._pids.items()}
        self._client_before = _children_cpu_ms()
        self._machine_before = procstat.machine_cpu()

    def stop(self, requests: int) -> dict:
        """CPU ms per request of every part (and wrk) since ``start``; warns when a part's processes changed."""
        per_request, total = {}, {}
        current = self.pids()  # one walk of /proc for every part, inside the measured window
        for part, pids in self._pids.items():
            now = current[part]
            # PostgreSQL's autovacuum workers come and go; a service's worker must not (it would lose its CPU).
            if part in SERVICES and sorted(now) != sorted(pids):
                print(f"warning: {part}'s processes changed during the run ({pids} -> {now}); its CPU figure "
                      "misses the exited ones", file=sys.stderr)
            total[part] = procstat.cpu_ms(self._before[part], procstat.cpu_ticks(now))
        total["wrk"] = _children_cpu_ms() - self._client_before
        busy, all_ticks = (now - then for now, then in zip(procstat.machine_cpu(), self._machine_before, strict=True))
        busy_ms = busy * 1000.0 / procstat.CLOCK_TICKS
        # Everything else the machine did meanwhile (other processes, this script, the kernel's own work).
        total["other"] = max(0.0, busy_ms - sum(total.values()))
        for part, ms in total.items():
            per_request[part] = ms / requests if requests else None
        return {"cpu_ms": total, "cpu_ms_per_request": per_request,
                "machine_busy_pct": 100.0 * busy / all_ticks if all_ticks else None}


def measure_get(system: LocalSystem, url: str, load: Load, warmup: int, token: str | None) -> dict:
    """Warm up, then one wrk run of ``load`` with the CPU of every part around it."""
    if warmup:
        wrk_tool.run(wrk_tool.argv(url, Load(load.threads, load.connections, warmup), token), timeout=warmup + 30)
    sampler = Sampler(system)
    sampler.start()
    figures = wrk_tool.parse(wrk_tool.run(wrk_tool.argv(url, load, token), timeout=load.seconds + 30))
    figures.update(sampler.stop(figures["requests"]))
    if figures["non_2xx"] or any(figures["socket_errors"].values()):
        print(f"warning: {url}: {figures['non_2xx']} non-2xx answers, socket errors {figures['socket_errors']}",
              file=sys.stderr)
    return figures


def _orders_rows(cursor, marker: str, after_id: int, purchases: bool) -> tuple[int, int]:
    """Rows of this run (by marker) and their distinct message ids (purchases: only the settled ones, confirmed
    or rejected, which is when the saga is over); ``id > after_id`` keeps it a range scan."""
    query = "SELECT count(*), count(DISTINCT message_id) FROM orders WHERE id > %s AND user_id = %s"
    if purchases:
        settled = (PURCHASE_CONFIRMED, PURCHASE_REJECTED)
        cursor.execute(f"{query} AND purchase_status IN (%s, %s)", (after_id, marker, *settled))
    else:
        cursor.execute(query, (after_id, marker))
    return cursor.fetchone()


def _confirmed(cursor, marker: str, after_id: int) -> int:
    cursor.execute(
        "SELECT count(*) FROM orders WHERE id > %s AND user_id = %s AND purchase_status = %s",
        (after_id, marker, PURCHASE_CONFIRMED),
    )
    return cursor.fetchone()[0]


def measure_orders(
    system: LocalSystem, gateway: str, load: Load, total: int, token: str, movie_id: int | None = None
) -> dict:
    """Exactly ``total`` orders through the gateway; wait for ``total`` rows; count lost and doubled ones.

    With ``movie_id``: every order is a purchase of one copy of it (the saga: billing -> inventory -> billing),
    and a row counts once it is confirmed or rejected; ``confirmed`` says how many were sold."""
    import psycopg2  # the services' requirement; imported here so the pure modules need no driver

    if total < load.threads:
        raise BenchError(f"--orders ({total}) must be at least --threads ({load.threads})")
    marker = f"bench-{uuid.uuid4().hex[:12]}"
    connection = psycopg2.connect(system.database_dsn("billing_db"))
    connection.autocommit = True
    with tempfile.TemporaryDirectory(prefix="bench-orders-") as scratch, connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0), pg_backend_pid() FROM orders")
        after_id, own_backend = cursor.fetchone()
        done_file = Path(scratch) / "threads-done"
        done_file.touch()
        arguments = (marker, str(total), str(load.threads), str(done_file), *([str(movie_id)] if movie_id else []))
        command = wrk_tool.argv(f"{gateway}/api/billing", Load(load.threads, load.connections, ORDERS_LIMIT_S),
                                token, str(ORDERS_SCRIPT), arguments)
        sampler = Sampler(system, exclude=frozenset({own_backend}))
        sampler.start()
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        http_s = landed_s = None
        rows = distinct = 0
        try:
            while time.monotonic() - started < ORDERS_LIMIT_S and process.poll() is None:
                time.sleep(POLL_S)
                if http_s is None and len(done_file.read_text().splitlines()) >= load.threads:
                    http_s = time.monotonic() - started
                rows, distinct = _orders_rows(cursor, marker, after_id, movie_id is not None)
                if landed_s is None and rows >= total:
                    landed_s = time.monotonic() - started
                if http_s is not None and landed_s is not None:
                    break
        finally:
            # wrk sleeps for its whole -d even when every thread stopped: SIGINT ends it and it prints its report.
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=30)
        elapsed = time.monotonic() - started
        time.sleep(1.0)  # anything redelivered or doubled late would show up as extra rows
        rows, distinct = _orders_rows(cursor, marker, after_id, movie_id is not None)
        confirmed = _confirmed(cursor, marker, after_id) if movie_id else None
    connection.close()
    counts = wrk_tool.parse_orders_line(out)
    figures = wrk_tool.parse(out)
    figures.update(sampler.stop(counts["answered"]))
    complete = landed_s is not None and http_s is not None
    figures.update(counts)
    figures.update({
        "wrk_rps": figures["rps"],  # diluted by wrk's wait for our SIGINT; the rate of the answers is below
        "rps": counts["answered"] / http_s if http_s else 0.0,
        "http_s": http_s if http_s is not None else elapsed,
        "landed_s": landed_s if landed_s is not None else elapsed,
        "complete": complete,
        "rows": rows,
        "distinct_message_ids": distinct,
        "lost": max(0, counts["accepted"] - rows),
        "doubled": (rows - distinct) + max(0, rows - counts["sent"]),
        "marker": marker,
        "confirmed": confirmed,
    })
    if err.strip():
        print(f"wrk: {err.strip()}", file=sys.stderr)
    return figures


def machine() -> dict:
    """nproc, CPU model, memory, kernel and Python of this machine."""
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_kib = procstat.parse_status_kib(Path("/proc/meminfo").read_text(), "MemTotal") or 0
    return {"nproc": os.cpu_count(), "cpu_model": model, "memory_gib": memory_kib / 1024 / 1024,
            "kernel": platform.release(), "python": platform.python_version(),
            "loadavg_at_start": os.getloadavg()[0]}


def git_state() -> dict:
    """Commit, branch and whether the work tree has changes (the figures describe that code)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or "unknown", "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def wait_until_quiet(limit_s: float, busy_pct: float = 25.0) -> float:
    """Wait (up to ``limit_s``) for one second in which the machine is less than ``busy_pct`` busy; return the
    last second's busy percentage. Another program's load would otherwise depress the figures."""
    deadline = time.monotonic() + limit_s
    while True:
        before = procstat.machine_cpu()
        time.sleep(1.0)
        busy, total = (now - then for now, then in zip(procstat.machine_cpu(), before, strict=True))
        pct = 100.0 * busy / total if total else 0.0
        if pct < busy_pct or time.monotonic() >= deadline:
            return pct
        print(f"the machine is {pct:.0f} % busy with other work; waiting for it to calm down ...",
              file=sys.stderr, flush=True)


def create_movie(inventory: str, **fields: object) -> int:
    """A movie to read or buy (created straight at inventory, which trusts its caller: the gateway)."""
    wrk_tool.check_local(inventory)
    body = json.dumps({"title": "Benchmark", "description": "read by make bench", **fields}).encode()
    request = urllib.request.Request(  # noqa: S310 - checked above: http://127.0.0.1
        f"{inventory}/api/movies", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - http://127.0.0.1 only
        return json.loads(response.read())["id"]


def run(system: LocalSystem, load: Load, warmup: int, orders: int, order_connections: int,
        quiet_wait: float = 0.0, purchases: int = 0) -> dict:
    """The whole measurement; returns the JSON-ready result."""
    urls = system.urls()
    for url in urls.values():
        wrk_tool.check_local(url)
    missing = [part for part in PARTS if not system.process_ids(part)]
    if missing:
        raise BenchError(f"not running: {', '.join(missing)}; start the system first (make up)")
    path = f"/api/movies/{create_movie(urls['inventory'])}"
    token = system.token()  # a real token of the local Cognito emulator: the gateway verifies (and caches) it
    started = datetime.datetime.now(datetime.UTC)
    idle_busy = wait_until_quiet(quiet_wait) if quiet_wait else None
    host = machine()  # before any load: the load average says whether the machine was quiet
    host["busy_pct_before"] = idle_busy
    print(f"measuring GET {path} direct to inventory ({load.seconds} s) ...", file=sys.stderr, flush=True)
    direct = measure_get(system, urls["inventory"] + path, load, warmup, None)
    print(f"measuring GET {path} through the gateway ({load.seconds} s) ...", file=sys.stderr, flush=True)
    proxied = measure_get(system, urls["gateway"] + path, load, warmup, token)
    print(f"measuring {orders:,} POST /api/billing through the gateway ...", file=sys.stderr, flush=True)
    order_load = Load(load.threads, order_connections, ORDERS_LIMIT_S)
    placed = measure_orders(system, urls["gateway"], order_load, orders, token)
    runs = {"direct": {"path": path, **direct}, "gateway": {"path": path, **proxied}, "orders": placed}
    if purchases:
        # One copy each of a movie with exactly that many in stock: every purchase should be confirmed.
        movie = create_movie(urls["inventory"], stock=purchases, price="1.00")
        print(f"measuring {purchases:,} purchases (the saga) through the gateway ...", file=sys.stderr, flush=True)
        runs["purchases"] = measure_orders(system, urls["gateway"], order_load, purchases, token, movie)
    memory = {part: procstat.memory(system.process_ids(part)).__dict__ for part in PARTS}
    return {
        "schema": 1,
        "date": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": host,
        "git": git_state(),
        "settings": {"threads": load.threads, "connections": load.connections, "seconds": load.seconds,
                     "warmup_seconds": warmup, "orders": orders, "order_connections": order_connections,
                     "purchases": purchases},
        "runs": runs,
        "ratio": proxied["rps"] / direct["rps"] if direct["rps"] else 0.0,
        "memory": memory,
        "python_rss_mib": sum(memory[part]["rss_mib"] for part in report.PYTHON_PARTS),
        "python_pss_mib": None if any(memory[p]["pss_mib"] is None for p in report.PYTHON_PARTS)
        else sum(memory[part]["pss_mib"] for part in report.PYTHON_PARTS),
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, measure, print the report, write the JSON; exit 1 when an order was lost or doubled."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections for the GETs (default 32)")
    parser.add_argument("--seconds", type=int, default=10, help="duration of each GET measurement (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each GET run (default 2)")
    parser.add_argument("--orders", type=int, default=10_000, help="orders to POST (default 10000)")
    parser.add_argument("--purchases", type=int, default=2_000,
                        help="purchases of one copy through the saga (default 2000; 0: skip)")
    parser.add_argument("--order-connections", type=int, default=32, help="wrk connections for the orders")
    parser.add_argument("--output", type=Path, help="JSON file (default bench/results/<UTC date-time>.json)")
    parser.add_argument("--quiet-wait", type=float, default=120,
                        help="seconds to wait at most for the machine to be idle before measuring (default 120)")
    parser.add_argument("--profile", choices=("dev", "test"), help="default: $LOCAL_PROFILE, else dev")
    args = parser.parse_args(argv)
    try:
        wrk_tool.ensure_installed()
        system = LocalSystem(args.profile)
        result = run(system, Load(args.threads, args.connections, args.seconds), args.warmup, args.orders,
                     args.order_connections, args.quiet_wait, args.purchases)
    except (BenchError, LocalSystemError, subprocess.SubprocessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    output = args.output or RESULTS / f"{result['date'].replace(':', '')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report.to_json(result))
    print(report.report(result))
    print(f"\nJSON: {output}\nDocs: python -m bench.docs {output}  (rewrites the figures in docs/performance.md "
          "and README.md)")
    runs = [result["runs"][name] for name in ("orders", "purchases") if name in result["runs"]]
    return 0 if all(run["complete"] and not run["lost"] and not run["doubled"] for run in runs) else 1
