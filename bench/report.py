"""Turn one benchmark result (a JSON-ready dict, see bench/benchmark.py) into Markdown: the figures table,
the orders and memory lines, the issue's targets, and a before/after comparison of two results.

Pure functions only (no I/O), so the rendering is unit-tested; bench/docs.py writes them into the docs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

#: Columns of CPU per request, in table order; the keys of a run's ``cpu_ms_per_request``.
#: "other" is the machine's busy time that none of the others used (a disturbed run shows here).
CPU_PARTS = ("gateway", "inventory", "billing", "rabbitmq", "postgres", "wrk", "other")
CPU_TITLES = {"rabbitmq": "RabbitMQ", "postgres": "PostgreSQL"}
#: The measured runs, in table order, with what the row says.
RUN_TITLES = {
    "direct": "GET /api/movies/<id> direct to inventory",
    "gateway": "GET /api/movies/<id> through the gateway",
    "orders": "POST /api/billing through the gateway",
    "purchases": "purchases (the saga) through the gateway",
}
#: Parts whose processes are Python (the services); their memory adds up to the "Python RSS" target.
PYTHON_PARTS = ("inventory", "billing", "gateway")


def to_json(result: dict) -> str:
    """The result as stable, readable JSON (sorted keys, 2-space indent, trailing newline)."""
    return json.dumps(result, indent=2, sort_keys=True) + "\n"


def _number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _cpu(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def figures_table(result: dict) -> str:
    """Markdown table: one row per run, req/s, p50, p99 and CPU ms per request of every part."""
    header = ["measurement", "req/s", "p50 ms", "p99 ms"] + [
        f"CPU ms/req {CPU_TITLES.get(part, part)}" for part in CPU_PARTS
    ] + ["machine busy"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for name, title in RUN_TITLES.items():
        run = result["runs"].get(name)
        if run is None:
            continue
        cpu = run.get("cpu_ms_per_request", {})
        cells = [title, _number(run["rps"]), _number(run["p50_ms"], 1), _number(run["p99_ms"], 1)]
        cells += [_cpu(cpu.get(part)) for part in CPU_PARTS]
        busy = run.get("machine_busy_pct")
        cells.append("-" if busy is None else f"{busy:.0f} %")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def orders_line(orders: dict) -> str:
    """One sentence: how many orders were sent, accepted, stored, how fast, and whether any was lost or doubled."""
    verdict = []
    verdict.append("none lost" if orders["lost"] == 0 else f"**{orders['lost']} LOST**")
    verdict.append("none doubled" if orders["doubled"] == 0 else f"**{orders['doubled']} DOUBLED**")
    landed = (
        f"{orders['rows']:,} rows ({orders['distinct_message_ids']:,} distinct message ids) in billing_db "
        + (f"{orders['landed_s']:.2f} s after the first request" if orders["complete"]
           else f"after the {orders['landed_s']:.0f} s limit (INCOMPLETE)")
    )
    return (
        f"Orders: {orders['sent']:,} sent, {orders['accepted']:,} accepted (200 after the broker's confirm), "
        f"answers done after {orders['http_s']:.2f} s; {landed}: {', '.join(verdict)}."
    )


def purchases_line(purchases: dict | None) -> str:
    """One sentence on the saga's run: purchases settled (confirmed or rejected) and how fast; "" without it."""
    if not purchases:
        return ""
    settled = purchases["rows"]
    pace = settled / purchases["landed_s"] if purchases["landed_s"] else 0.0
    return (
        f" Purchases: {purchases['sent']:,} sent, {purchases['accepted']:,} accepted; {settled:,} settled "
        + (f"{purchases['landed_s']:.2f} s after the first request (**{pace:,.0f} purchases/s** end to end)"
           if purchases["complete"] else f"after the {purchases['landed_s']:.0f} s limit (INCOMPLETE)")
        + f", {purchases.get('confirmed') or 0:,} confirmed."
    )


def memory_table(result: dict) -> str:
    """Markdown table of RSS and PSS per part after the run, and the Python services' total."""
    lines = ["| part | processes | RSS MiB | PSS MiB |", "|---|---:|---:|---:|"]
    for part, memory in result["memory"].items():
        lines.append(f"| {part} | {memory['processes']} | {_number(memory['rss_mib'], 1)} "
                     f"| {_number(memory['pss_mib'], 1)} |")
    lines.append(f"| **Python services (total)** | {sum(result['memory'][p]['processes'] for p in PYTHON_PARTS)} "
                 f"| **{_number(result['python_rss_mib'], 1)}** | {_number(result['python_pss_mib'], 1)} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class Figure:
    """One headline figure of a result: how to read it, how to print it, the issue's target for it."""

    label: str
    read: Callable[[dict], float | None]
    digits: int
    target: float | None = None
    higher_is_better: bool = False

    def value(self, result: dict) -> float | None:
        """The figure in ``result``, None when the result lacks it."""
        try:
            return self.read(result)
        except (KeyError, TypeError):
            return None

    def met(self, result: dict) -> bool | None:
        """Whether the target is met (None: no target, or no value)."""
        value = self.value(result)
        if self.target is None or value is None:
            return None
        return value >= self.target if self.higher_is_better else value <= self.target

    def target_text(self) -> str:
        """``≤ 0.30`` or ``≥ 0.60``."""
        if self.target is None:
            return ""
        return f"{'≥' if self.higher_is_better else '≤'} {_number(self.target, self.digits)}"


def _orders_ok_seconds(result: dict) -> float | None:
    """Seconds until every order was a row, or None when any was lost, doubled or missing (target not met)."""
    orders = result["runs"]["orders"]
    if not orders["complete"] or orders["lost"] or orders["doubled"]:
        return None
    return orders["landed_s"]


#: The issue's headline figures and targets (this machine, loopback, make up defaults, c=32).
FIGURES = (
    Figure("direct inventory req/s (GET by id)", lambda r: r["runs"]["direct"]["rps"], 0, higher_is_better=True),
    Figure("through-gateway req/s (GET by id)", lambda r: r["runs"]["gateway"]["rps"], 0, higher_is_better=True),
    Figure("gateway / direct req/s", lambda r: r["ratio"], 2, 0.60, True),
    Figure("inventory CPU ms per GET by id (direct)",
           lambda r: r["runs"]["direct"]["cpu_ms_per_request"]["inventory"], 2, 0.30),
    Figure("gateway CPU ms per proxied GET", lambda r: r["runs"]["gateway"]["cpu_ms_per_request"]["gateway"], 2, 0.30),
    Figure("gateway CPU ms per order", lambda r: r["runs"]["orders"]["cpu_ms_per_request"]["gateway"], 2, 0.30),
    Figure("p99 ms through the gateway (GET)", lambda r: r["runs"]["gateway"]["p99_ms"], 1, 30),
    Figure("orders/s through the gateway", lambda r: r["runs"]["orders"]["rps"], 0, higher_is_better=True),
    Figure("s until all orders are rows (none lost/doubled)", _orders_ok_seconds, 2, 5),
    Figure("Python services RSS MiB", lambda r: r["python_rss_mib"], 0, 300),
)


def targets_table(result: dict) -> str:
    """Markdown table of the issue's targets: measured value, target, met or not."""
    lines = ["| figure | measured | target | met |", "|---|---:|---:|---|"]
    for figure in FIGURES:
        if figure.target is None:
            continue
        met = figure.met(result)
        lines.append(f"| {figure.label} | {_number(figure.value(result), figure.digits)} | {figure.target_text()} "
                     f"| {'yes' if met else 'no'} |")
    return "\n".join(lines)


def comparison_table(before: dict, after: dict) -> str:
    """Markdown before/after table of the headline figures (change in %, + is the better direction)."""
    lines = [f"| figure | before ({before['date'][:10]}) | after ({after['date'][:10]}) | change |",
             "|---|---:|---:|---:|"]
    for figure in FIGURES:
        old, new = figure.value(before), figure.value(after)
        change = "-"
        if old and new is not None:
            ratio = new / old - 1
            change = f"{ratio:+.0%}"
        lines.append(f"| {figure.label} | {_number(old, figure.digits)} | {_number(new, figure.digits)} | {change} |")
    return "\n".join(lines)


def machine_line(result: dict) -> str:
    """Where and when: date, commit, cores, CPU model, kernel, Python, load settings."""
    machine, settings, git = result["machine"], result["settings"], result["git"]
    commit = git["commit"][:10] + (" with local changes" if git["dirty"] else "")
    return (
        f"Run {result['date']} on commit {commit} ({git['branch']}): {machine['nproc']} cores "
        f"({machine['cpu_model']}), {machine['memory_gib']:.1f} GiB, Linux {machine['kernel']}, Python "
        f"{machine['python']}, load average {machine.get('loadavg_at_start', 0):.2f} at the start; "
        f"wrk -t{settings['threads']} -c{settings['connections']} -d{settings['seconds']}s "
        f"(after {settings['warmup_seconds']} s of warm-up) on the same machine; {settings['orders']:,} orders "
        f"with -c{settings['order_connections']}."
    )


def report(result: dict) -> str:
    """The whole Markdown report of one run (what the benchmark prints and the docs embed)."""
    return "\n\n".join((
        machine_line(result),
        figures_table(result),
        f"Gateway/direct req/s ratio: **{result['ratio']:.2f}**. {orders_line(result['runs']['orders'])}"
        + purchases_line(result["runs"].get("purchases")),
        "Memory after the run:\n\n" + memory_table(result),
        "Targets (issue 12):\n\n" + targets_table(result),
    ))


def summary_lines(result: dict) -> str:
    """Three lines for the README: the headline figures of one run, dated."""
    runs = result["runs"]
    return (
        f"- `make bench` on {result['date'][:10]} ({result['machine']['nproc']} cores, "
        f"{result['machine']['cpu_model']}): GET by id {runs['direct']['rps']:,.0f} req/s direct to inventory, "
        f"{runs['gateway']['rps']:,.0f} req/s through the gateway (ratio {result['ratio']:.2f}, "
        f"p99 {runs['gateway']['p99_ms']:.1f} ms).\n"
        f"- CPU per request: inventory {runs['direct']['cpu_ms_per_request']['inventory']:.2f} ms, gateway "
        f"{runs['gateway']['cpu_ms_per_request']['gateway']:.2f} ms per proxied GET and "
        f"{runs['orders']['cpu_ms_per_request']['gateway']:.2f} ms per order.\n"
        f"- {runs['orders']['sent']:,} orders became rows in {runs['orders']['landed_s']:.2f} s "
        f"({'none lost or doubled' if not (runs['orders']['lost'] or runs['orders']['doubled']) else 'MISMATCH'}); "
        f"the Python services use {result['python_rss_mib']:.0f} MiB RSS. Details: "
        f"[docs/performance.md](docs/performance.md)."
        + _purchases_summary(runs.get("purchases"))
    )


def _purchases_summary(purchases: dict | None) -> str:
    """The README line of the saga's run ("" without one)."""
    if not purchases or not purchases["complete"]:
        return ""
    return (
        f"\n- {purchases['rows']:,} purchases through the saga (billing, inventory, billing) settled in "
        f"{purchases['landed_s']:.2f} s ({purchases['rows'] / purchases['landed_s']:,.0f} purchases/s end to end, "
        f"{purchases.get('confirmed') or 0:,} confirmed)."
    )


def replace_between(text: str, start: str, end: str, content: str) -> str:
    """``text`` with everything between the ``start`` and ``end`` marker lines replaced by ``content``.

    The markers stay, so the section can be regenerated; a missing or misordered marker is an error (the
    generator must never append a second copy or eat the document).
    """
    first = text.find(start)
    last = text.find(end)
    if first < 0 or last < 0 or last < first or text.count(start) != 1 or text.count(end) != 1:
        raise ValueError(f"expected exactly one {start!r} followed by one {end!r}")
    return text[: first + len(start)] + "\n" + content.strip("\n") + "\n" + text[last:]
