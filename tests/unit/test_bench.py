"""The benchmark's pure parts: reading wrk's report and /proc, rendering the table/JSON, rewriting the docs.

No load, no servers, no timing: recorded outputs in, figures out.
"""

import json
import os

import pytest

from bench import procstat, report
from bench import wrk as wrk_tool
from bench.docs import FIGURES_MARKERS, SUMMARY_MARKERS, figures_section
from local_system.processes import parent_pid, process_tree

# A real `wrk -t2 -c32 -d10s --latency` report (wrk 4.1.0), with a non-2xx and a socket-error line added.
WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:8080/api/movies/1
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     9.03ms    3.21ms  61.40ms   80.50%
    Req/Sec     1.80k   150.22     2.10k    71.00%
  Latency Distribution
     50%    8.51ms
     75%   10.12ms
     90%   12.80ms
     99%    1.02s
  35921 requests in 10.01s, 8.15MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 3
Requests/sec:   3588.61
Transfer/sec:    833.70KB
"""


def test_wrk_report_is_read_into_figures():
    figures = wrk_tool.parse(WRK_OUTPUT)
    assert figures["requests"] == 35921
    assert figures["seconds"] == pytest.approx(10.01)
    assert figures["rps"] == pytest.approx(3588.61)
    assert figures["p50_ms"] == pytest.approx(8.51)
    assert figures["p75_ms"] == pytest.approx(10.12)
    assert figures["p90_ms"] == pytest.approx(12.80)
    assert figures["p99_ms"] == pytest.approx(1020.0)  # seconds are converted, not read as ms
    assert figures["non_2xx"] == 3
    assert figures["socket_errors"] == {"connect": 0, "read": 2, "write": 0, "timeout": 1}


def test_wrk_report_without_errors_counts_zero():
    clean = "\n".join(line for line in WRK_OUTPUT.splitlines() if "errors" not in line and "Non-2xx" not in line)
    figures = wrk_tool.parse(clean)
    assert figures["non_2xx"] == 0
    assert figures["socket_errors"] == {"connect": 0, "read": 0, "write": 0, "timeout": 0}


def test_the_req_sec_line_is_not_taken_for_a_percentile():
    """'Req/Sec ... 71.00%' ends like a percentile line; only the distribution's own lines count."""
    without_distribution = WRK_OUTPUT.split("  Latency Distribution")[0] + "  35921 requests in 10.01s, 8MB read\n"
    with pytest.raises(ValueError, match="--latency"):
        wrk_tool.parse(without_distribution)


def test_a_failed_wrk_run_is_an_error_not_zero_figures():
    with pytest.raises(ValueError, match="requests in"):
        wrk_tool.parse("unable to connect to 127.0.0.1:8080 Connection refused\n")


@pytest.mark.parametrize(
    ("text", "ms"), [("812.00us", 0.812), ("1.52ms", 1.52), ("2.01s", 2010.0), ("1.00m", 60_000.0), ("10.01s", 10010.0)]
)
def test_wrk_durations_in_milliseconds(text, ms):
    assert wrk_tool.duration_ms(text) == pytest.approx(ms)


def test_unknown_duration_is_refused():
    with pytest.raises(ValueError):
        wrk_tool.duration_ms("12 parsecs")


def test_orders_line_of_the_lua_script():
    output = WRK_OUTPUT + "orders sent 10000 answered 10000 accepted 9998\n"
    assert wrk_tool.parse_orders_line(output) == {"sent": 10000, "answered": 10000, "accepted": 9998}
    with pytest.raises(ValueError):
        wrk_tool.parse_orders_line(WRK_OUTPUT)


def test_wrk_command_line():
    load = wrk_tool.Load(threads=2, connections=32, seconds=10)
    assert wrk_tool.argv("http://127.0.0.1:3000/api/movies/1", load, token="abc") == [
        "wrk", "-t2", "-c32", "-d10s", "--latency", "-H", "Authorization: Bearer abc",
        "http://127.0.0.1:3000/api/movies/1",
    ]
    with_script = wrk_tool.argv("http://127.0.0.1:3000/api/billing", load, script="orders.lua", script_args=("m", "5"))
    assert with_script[-5:] == ["orders.lua", "http://127.0.0.1:3000/api/billing", "--", "m", "5"]


@pytest.mark.parametrize("url", ["http://localhost:3000/", "http://10.0.0.5:3000/", "https://example.com/"])
def test_only_loopback_is_ever_loaded(url):
    with pytest.raises(wrk_tool.BenchError, match=r"127\.0\.0\.1"):
        wrk_tool.argv(url, wrk_tool.Load())


# -- /proc ------------------------------------------------------------------------------------------------
# Field 2 (the command) holds spaces and a ')': fields must be counted after the LAST ')'.
STAT_LINE = "4242 (gunicorn: worker) x)) S 4200 4200 4200 0 -1 4194368 1000 0 0 0 1234 567 8 9 20 0 9 0 77 1 2\n"


def test_proc_stat_utime_and_stime():
    assert procstat.parse_stat(STAT_LINE) == (1234, 567)
    assert parent_pid(STAT_LINE) == 4200


def test_cpu_ms_from_two_samples():
    before = {1: 100, 2: 50}
    after = {1: 150, 2: 50, 3: 10}  # pid 3 started during the run: counted from zero
    assert procstat.cpu_ms(before, after) == pytest.approx(60 * 1000.0 / procstat.CLOCK_TICKS)


def test_machine_cpu_busy_and_total():
    text = "cpu  100 5 50 800 40 3 2 0 7 0\ncpu0 50 2 25 400 20 1 1 0 0 0\nintr 12345\n"
    assert procstat.parse_machine_cpu(text) == (160, 1000)  # total of the first 8 fields; busy without idle/iowait


def test_status_values_in_kib():
    status = "Name:\tpython\nVmHWM:\t  20000 kB\nVmRSS:\t   12345 kB\nThreads:\t9\n"
    assert procstat.parse_status_kib(status, "VmRSS") == 12345
    assert procstat.parse_status_kib("Rss:  100 kB\nPss:   40 kB\n", "Pss") == 40
    assert procstat.parse_status_kib(status, "Pss") is None


def test_own_process_is_readable():
    """The readers work on a live process (this one): CPU ticks and memory are positive."""
    me = os.getpid()
    assert procstat.cpu_ticks([me])[me] >= 0
    memory = procstat.memory([me])
    assert memory.processes == 1 and memory.rss_mib > 1
    assert procstat.cpu_ticks([2**22 + 12345]) == {}  # no such pid: skipped, not an error


def test_process_tree_starts_with_the_leader_and_finds_children():
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        tree = process_tree(os.getpid())
        assert tree[0] == os.getpid() and child.pid in tree
    finally:
        child.communicate(b"")
    assert process_tree(None) == []


# -- rendering ----------------------------------------------------------------------------------------------
def _run(rps, p50, p99, **cpu):
    parts = dict.fromkeys(report.CPU_PARTS, 0.0) | cpu
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "cpu_ms_per_request": parts, "machine_busy_pct": 97.0}


def sample_result(**changes) -> dict:
    orders = _run(1800, 15.0, 40.0, gateway=0.62, billing=0.11, rabbitmq=0.25) | {
        "sent": 10000, "answered": 10000, "accepted": 10000, "rows": 10000, "distinct_message_ids": 10000,
        "lost": 0, "doubled": 0, "complete": True, "http_s": 5.6, "landed_s": 5.9,
    }
    memory = {part: {"processes": 3, "rss_mib": 100.0, "pss_mib": 70.0}
              for part in ("gateway", "inventory", "billing", "rabbitmq", "postgres")}
    result = {
        "schema": 1, "date": "2026-11-29T12:00:00Z",
        "machine": {"nproc": 2, "cpu_model": "AMD EPYC", "memory_gib": 23.5, "kernel": "6.1", "python": "3.11.7"},
        "git": {"commit": "063eb15a1c0ffee", "branch": "main", "dirty": False},
        "settings": {"threads": 2, "connections": 32, "seconds": 10, "warmup_seconds": 2, "orders": 10000,
                     "order_connections": 32},
        "runs": {"direct": _run(3600, 8.5, 20.0, inventory=0.42, postgres=0.1),
                 "gateway": _run(1500, 20.0, 45.0, gateway=0.60, inventory=0.52), "orders": orders},
        "ratio": 1500 / 3600, "memory": memory, "python_rss_mib": 300.0, "python_pss_mib": 210.0,
    }
    result.update(changes)
    return result


def test_figures_table_has_one_row_per_run_and_every_cpu_column():
    table = report.figures_table(sample_result()).splitlines()
    assert table[0].startswith("| measurement | req/s | p50 ms | p99 ms | CPU ms/req gateway")
    assert "CPU ms/req RabbitMQ" in table[0] and "CPU ms/req PostgreSQL" in table[0]
    assert table[2] == "| GET /api/movies/<id> direct to inventory | 3,600 | 8.5 | 20.0 | 0.00 | 0.42 | 0.00 | 0.00 " \
                       "| 0.10 | 0.00 | 0.00 | 97 % |"
    assert table[4].startswith("| POST /api/billing through the gateway | 1,800 | 15.0 | 40.0 | 0.62 | 0.00 | 0.11 "
                               "| 0.25")
    assert len(table) == 5


def test_targets_table_says_which_are_met():
    rows = {line.split(" | ")[0].lstrip("| "): line for line in report.targets_table(sample_result()).splitlines()}
    assert rows["gateway / direct req/s"].endswith("| 0.42 | ≥ 0.60 | no |")
    assert rows["Python services RSS MiB"].endswith("| 300 | ≤ 300 | yes |")
    assert rows["s until all orders are rows (none lost/doubled)"].endswith("| 5.90 | ≤ 5.00 | no |")


def test_a_lost_order_fails_the_orders_target_whatever_the_time():
    result = sample_result()
    result["runs"]["orders"] |= {"lost": 1, "landed_s": 1.0}
    figure = next(f for f in report.FIGURES if f.label.startswith("s until all orders"))
    assert figure.met(result) is None and figure.value(result) is None
    assert "**1 LOST**" in report.orders_line(result["runs"]["orders"])


def test_orders_line_reports_counts_and_time():
    line = report.orders_line(sample_result()["runs"]["orders"])
    assert "10,000 sent, 10,000 accepted" in line
    assert "10,000 rows (10,000 distinct message ids) in billing_db 5.90 s after the first request" in line
    assert line.endswith("none lost, none doubled.")


def test_memory_table_totals_the_python_services():
    table = report.memory_table(sample_result())
    assert "| **Python services (total)** | 9 | **300.0** | 210.0 |" in table


def test_comparison_shows_the_change():
    after = sample_result(date="2026-12-01T00:00:00Z", ratio=0.75)
    table = report.comparison_table(sample_result(), after)
    assert table.splitlines()[0] == "| figure | before (2026-11-29) | after (2026-12-01) | change |"
    assert "| gateway / direct req/s | 0.42 | 0.75 | +80% |" in table


def test_json_round_trips_and_is_stable():
    result = sample_result()
    text = report.to_json(result)
    assert json.loads(text) == result
    assert text == report.to_json(json.loads(text)) and text.endswith("\n")


def test_report_is_dated_and_names_the_machine():
    text = report.report(sample_result())
    assert text.startswith("Run 2026-11-29T12:00:00Z on commit 063eb15a1c (main): 2 cores (AMD EPYC)")
    assert "ratio: **0.42**" in text
    assert "2026-11-29" in report.summary_lines(sample_result())


def test_generated_section_replaces_only_between_markers():
    start, end = FIGURES_MARKERS
    document = f"# Performance\n\nintro\n\n{start}\nold figures\n{end}\n\nhow it is measured\n"
    section = figures_section(sample_result(), "bench/results/x.json", sample_result(), "bench/results/y.json")
    updated = report.replace_between(document, start, end, section)
    assert "old figures" not in updated and "intro" in updated and updated.endswith("how it is measured\n")
    assert "Before/after" in updated
    assert report.replace_between(updated, start, end, section) == updated  # regenerating changes nothing


@pytest.mark.parametrize("document", ["no markers", f"{SUMMARY_MARKERS[1]}\n{SUMMARY_MARKERS[0]}",
                                      f"{SUMMARY_MARKERS[0]}\n{SUMMARY_MARKERS[0]}\n{SUMMARY_MARKERS[1]}"])
def test_missing_or_misordered_markers_are_an_error(document):
    with pytest.raises(ValueError, match="exactly one"):
        report.replace_between(document, *SUMMARY_MARKERS, "x")
