#!/usr/bin/env python3
"""Write ``monitoring/prometheus/rules.yml``, the local Prometheus's rules, from the CloudWatch alarm table.

One source for both: every alert rule is a row of ``stacks.alarm_table.alarm_specs`` (the ``dev`` environment's
config, which the local system mirrors, with the local system's billing shards) whose metric has a local
equivalent in ``MIRRORS`` below: same name, same threshold, same comparison; ``for:`` is the CloudWatch
datapoints times the metric's period. Changing a threshold in the CDK code and not running this fails
``tests/infra/test_prometheus_rules.py``::

    .venv/bin/python scripts/prometheus_rules.py           # rewrite the file
    .venv/bin/python scripts/prometheus_rules.py --check   # exit 1 when the file is stale

Needs the virtualenv (the alarm table is CDK code); the local system only copies the generated file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")  # jsii's banner on Node 20
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # run as a script: stacks/ and contract/ live in the repository root

from contract.messaging import BILLING_QUEUE, EXPRESS, EXPRESS_QUEUE  # noqa: E402
from local_system.credentials import BILLING_SHARD_DATABASES, LOCAL_BILLING_SHARDS  # noqa: E402

RULES_FILE = REPO_ROOT / "monitoring" / "prometheus" / "rules.yml"
#: Requests Prometheus itself and the health checks make; the ALB's and the access logs' counts exclude them.
PROBES = 'route!~"/health|/ready|/metrics"'


@dataclass(frozen=True)
class Mirror:
    """The PromQL of the quantity a CloudWatch metric measures, and that metric's period (seconds)."""

    expr: str
    period: int = 300
    above_bucket: bool = False
    """``expr`` is a histogram's ``_bucket`` selector without ``le``: the rule counts observations above the
    threshold (a bucket boundary) in one period instead of comparing a value (CloudWatch has the maximum)."""


def _error_rate(job: str) -> str:
    total = f'sum(rate(http_requests_total{{job="{job}",{PROBES}}}[5m]))'
    errors = f'sum(rate(http_requests_total{{job="{job}",{PROBES},status=~"5.."}}[5m]))'
    return f"100 * ({errors} or vector(0)) / clamp_min({total}, 1e-9)"


def _p99(job: str) -> str:
    buckets = f'http_request_duration_seconds_bucket{{job="{job}",{PROBES}}}'
    return f"histogram_quantile(0.99, sum by (le) (rate({buckets}[5m])))"


def _queue(name: str, metric: str = "rabbitmq_queue_messages") -> str:
    return f'sum({metric}{{queue="{name}"}})'


#: CloudWatch metric name (``AlarmSpec.metric``) -> the same quantity locally. Not mirrored: the RDS host
#: metrics (CPU, storage, freeable memory) and the broker's CPU: nothing local measures them comparably.
MIRRORS: dict[str, Mirror] = {
    "error_rate": Mirror(_error_rate("gateway")),
    "latency_p99": Mirror(_p99("gateway")),
    "unhealthy_targets": Mirror('count(up{job="gateway"} == 0) or vector(0)', 60),
    "running_gateway": Mirror('sum(up{job="gateway"}) or vector(0)', 60),
    "running_billing": Mirror('sum(up{job="billing"}) or vector(0)', 60),
    # Locally billing consumes both queues (lanes "all"): the express consumer is billing's consumer on it.
    "running_billing_express": Mirror(f"{_queue(EXPRESS_QUEUE.name, 'rabbitmq_queue_consumers')} or vector(0)", 60),
    "queue_depth": Mirror(_queue(BILLING_QUEUE.name), 60),
    "dlq_depth": Mirror(_queue(BILLING_QUEUE.dead_letter_queue), 60),
    "express_depth": Mirror(_queue(EXPRESS_QUEUE.name), 60),
    "express_dlq_depth": Mirror(_queue(EXPRESS_QUEUE.dead_letter_queue), 60),
    "express_order_age": Mirror(f'billing_order_age_seconds_bucket{{priority="{EXPRESS}"}}', 60, above_bucket=True),
    "inventory_error_rate": Mirror(_error_rate("inventory")),
    "inventory_latency_p99": Mirror(f"1000 * {_p99('inventory')}"),  # milliseconds, as the access-log metric
    "broker_memory_percent": Mirror(
        "100 * max(rabbitmq_process_resident_memory_bytes) / min(rabbitmq_resident_memory_limit_bytes)"
    ),
    "broker_disk_headroom": Mirror(
        "min(rabbitmq_disk_space_available_bytes) / max(rabbitmq_disk_space_available_limit_bytes)"
    ),
    "rate_limit_store_unavailable": Mirror(
        'sum(increase(gateway_rate_limit_decisions_total{outcome="store_unavailable"}[5m])) or vector(0)'
    ),
    "InventoryDbConnections": Mirror('sum(pg_stat_database_numbackends{datname="movies_db"})'),
    "BillingDbConnections": Mirror('sum(pg_stat_database_numbackends{datname="billing_db"})'),
}

# The local system's billing shards (``make up`` runs LOCAL_BILLING_SHARDS, each k >= 1 a database of the one
# local PostgreSQL): the rules mirror the dev alarm table with that many shards, so each local shard database
# has the connections alert AWS gives each shard's instance.
MIRRORS.update(
    {
        f"BillingShard{k}DbConnections": Mirror(f'sum(pg_stat_database_numbackends{{datname="{database}"}})')
        for k, database in enumerate(BILLING_SHARD_DATABASES, start=1)
    }
)

#: Recording rules: what the graphs and a person at the console want, precomputed.
RECORDING = {
    "job_status:http_requests:rate1m": f"sum by (job, status) (rate(http_requests_total{{{PROBES}}}[1m]))",
    "job:http_request_duration_seconds:p99_5m": (
        f"histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket{{{PROBES}}}[5m])))"
    ),
    "queue:rabbitmq_queue_messages:sum": "sum by (queue) (rabbitmq_queue_messages)",
    "priority:billing_order_age_seconds:p99_5m": (
        "histogram_quantile(0.99, sum by (priority, le) (rate(billing_order_age_seconds_bucket[5m])))"
    ),
}

#: CloudWatch comparison operator -> PromQL comparison.
OPERATORS = {
    "GREATER_THAN_THRESHOLD": ">",
    "GREATER_THAN_OR_EQUAL_TO_THRESHOLD": ">=",
    "LESS_THAN_THRESHOLD": "<",
    "LESS_THAN_OR_EQUAL_TO_THRESHOLD": "<=",
}


def number(value: float) -> str:
    """A threshold as PromQL and YAML write it: 1000, not 1000.0."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def duration(seconds: int) -> str:
    """Seconds as a Prometheus duration (15m, 90s)."""
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


@dataclass(frozen=True)
class AlertRule:
    """One generated alert rule."""

    name: str
    expr: str
    threshold: float
    operator: str
    for_seconds: int
    description: str


def local_config():
    """The config the local rules mirror: dev's, with the local system's billing shards."""
    import dataclasses

    from stacks.config import DEV

    return dataclasses.replace(DEV, billing_shards=LOCAL_BILLING_SHARDS)


def alert_rules() -> list[AlertRule]:
    """An alert per mirrored row of the dev alarm table (with the local shards), in the table's order."""
    from stacks.alarm_table import alarm_specs

    rules = []
    for spec in alarm_specs(local_config()):
        mirror = MIRRORS.get(spec.metric)
        if mirror is None:
            continue
        operator = OPERATORS[spec.comparison.value]
        threshold = number(spec.threshold)
        if mirror.above_bucket:
            window = duration(mirror.period)
            count = f"sum(increase({mirror.expr[:-1]},le=%s}}[{window}]))"
            # prometheus_client writes bucket bounds as floats (le="120.0"); Prometheus 2 compares them as text.
            bound = json.dumps(repr(float(spec.threshold)))
            expr = f'({count % json.dumps("+Inf")} - {count % bound}) > 0'
        else:
            expr = f"({mirror.expr}) {operator} {threshold}"
        datapoints = spec.datapoints_to_alarm or spec.evaluation_periods
        rules.append(AlertRule(spec.id, expr, spec.threshold, operator, datapoints * mirror.period, spec.description))
    return rules


def render(rules: list[AlertRule]) -> str:
    """The rules file (YAML; strings JSON-quoted, which YAML reads as double-quoted scalars)."""
    lines = [
        "# Generated by scripts/prometheus_rules.py from stacks/alarm_table.py (dev config): do not edit.",
        "# Alert names and thresholds are the CloudWatch alarms'; local_system copies this file into",
        "# .run/<profile>/prometheus/ (the test profile shortens every `for:`).",
        "groups:",
        "  - name: recording",
        "    rules:",
    ]
    for name, expr in RECORDING.items():
        lines += [f"      - record: {name}", f"        expr: {json.dumps(expr)}"]
    lines += ["  - name: cloudwatch-alarms", "    rules:"]
    for rule in rules:
        lines += [
            f"      - alert: {rule.name}",
            f"        expr: {json.dumps(rule.expr)}",
            f"        for: {duration(rule.for_seconds)}",
            "        labels:",
            "          severity: page",
            "        annotations:",
            f"          summary: {json.dumps(rule.description)}",
            f"          threshold: {json.dumps(number(rule.threshold))}",
            '          value: "{{ $value }}"',
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file differs from the alarm table")
    args = parser.parse_args(argv)
    text = render(alert_rules())
    if args.check:
        current = RULES_FILE.read_text() if RULES_FILE.exists() else ""
        if current != text:
            print(f"{RULES_FILE.relative_to(REPO_ROOT)} is stale: run .venv/bin/python scripts/prometheus_rules.py")
            return 1
        return 0
    RULES_FILE.parent.mkdir(parents=True, exist_ok=True)
    RULES_FILE.write_text(text)
    print(f"wrote {RULES_FILE.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
