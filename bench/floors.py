"""Floors of the hot paths (not a test): ``make bench-floors``, or ``python -m bench.floors --help``.

What a request costs in a bare WSGI app under the services' own gunicorn settings (``common.gunicorn_config``:
gthread, the ``make up`` workers and threads) and the same wrk load as ``make bench``, next to the real service
measured in the same run: (a) a fixed body; (b) a GET proxied to the running inventory with the gateway's own
upstream client and one JSON log line (no Flask, no auth); (c) (b) plus the verified-token cache check;
(d) one psycopg2 query by primary key. CPU per request = utime + stime of the gunicorn master and workers
(/proc) over the run, divided by the requests wrk completed. Needs the ``make up`` system (inventory, the token).
Ports 18091-18094 on 127.0.0.1 serve the floor apps for the run's duration.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench import procstat
from bench import wrk as wrk_tool
from bench.benchmark import create_movie
from bench.wrk import BenchError, Load
from local_system import LocalSystem

REPO = Path(__file__).resolve().parent.parent
#: app name -> (port, service whose environment it gets, what it is)
FLOORS = {
    "bare": (18091, "inventory", "(a) bare WSGI, fixed body"),
    "proxy": (18092, "gateway", "(b) bare WSGI proxy to inventory + JSON log line"),
    "proxy_auth": (18093, "gateway", "(c) (b) + verified-token cache check"),
    "database": (18094, "inventory", "(d) bare WSGI, one SELECT by primary key"),
}


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _measure(url: str, pids: list[int], load: Load, warmup: int, token: str | None) -> dict:
    wrk_tool.run(wrk_tool.argv(url, Load(load.threads, load.connections, warmup), token), timeout=warmup + 30)
    before = procstat.cpu_ticks(pids)
    figures = wrk_tool.parse(wrk_tool.run(wrk_tool.argv(url, load, token), timeout=load.seconds + 30))
    cpu = procstat.cpu_ms(before, procstat.cpu_ticks(pids))
    return {"rps": figures["rps"], "p99_ms": figures.get("p99_ms"),
            "cpu_ms_per_request": cpu / figures["requests"], "non_2xx": figures["non_2xx"],
            "rss_mib": procstat.memory(pids).rss_mib}


def _serve(system: LocalSystem, name: str) -> subprocess.Popen:
    port, service, _ = FLOORS[name]
    environment = {**os.environ, **system.service_env(service), "FLOOR_APP": name, "PORT": str(port),
                   "BIND_HOST": "127.0.0.1", "SERVICE_NAME": "floor", "FLOOR_INVENTORY_URL": system.urls()["inventory"],
                   "PYTHONPATH": f"{REPO / 'services'}{os.pathsep}{REPO}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "python:common.gunicorn_config", "bench.floor_apps:app"],
        env=environment, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            return process
        except urllib.error.HTTPError:
            return process  # it answers (the token or the path was not what it wanted)
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise BenchError(f"floor app {name} did not start on port {port}")


def main(argv: list[str] | None = None) -> int:
    """Measure every floor and the two real services; print a Markdown table."""
    parser = argparse.ArgumentParser(prog="python -m bench.floors", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--only", nargs="*", choices=[*FLOORS, "inventory", "gateway"])
    args = parser.parse_args(argv)
    wrk_tool.ensure_installed()
    system = LocalSystem()
    load = Load(2, args.connections, args.seconds)
    urls = system.urls()
    path = f"/api/movies/{create_movie(urls['inventory'])}"
    token = system.token()
    rows = []
    for name in args.only or [*FLOORS, "inventory", "gateway"]:
        if name in FLOORS:
            process = _serve(system, name)
            try:
                pids = [process.pid, *_children(process.pid)]
                figures = _measure(f"http://127.0.0.1:{FLOORS[name][0]}{path}", pids, load, args.warmup, token)
            finally:
                process.terminate()
                process.wait(30)
            rows.append((FLOORS[name][2], figures))
        else:
            figures = _measure(urls[name] + path, system.process_ids(name), load, args.warmup,
                               token if name == "gateway" else None)
            rows.append((f"the real {name} (Flask), GET by id", figures))
        print(f"{rows[-1][0]}: {figures}", file=sys.stderr, flush=True)
    print("| app | CPU ms / request | req/s | p99 ms | non-2xx |\n|---|---|---|---|---|")
    for label, figures in rows:
        print(f"| {label} | {figures['cpu_ms_per_request']:.3f} | {figures['rps']:,.0f} | "
              f"{figures['p99_ms'] if figures['p99_ms'] is not None else '-'} | {figures['non_2xx']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
