"""Metrics from the services' JSON log lines: one CloudWatch Logs metric filter per (log group, line).

The services log one JSON object per line (``services/common/log.py``), so a metric is a pattern on its fields
(``$.message = "request" && $.status >= 500``) and a value (``"1"`` or a field such as ``$.duration_ms``).
Every such metric lives in one namespace. No sidecar, no PutMetricData permission, no code in the request path.
"""

from __future__ import annotations

from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_logs as logs
from constructs import Construct

#: Namespace of every metric derived from the services' logs.
LOG_METRICS_NAMESPACE = "Movies"


def log_metric_filter(
    scope: Construct,
    construct_id: str,
    log_group: logs.ILogGroup,
    metric_name: str,
    line: str,
    value: str,
    default_value: float | None = None,
    unit: cloudwatch.Unit | None = None,
) -> logs.MetricFilter:
    """A filter turning the log lines matching ``line`` (a JSON pattern without braces) into ``metric_name``."""
    return logs.MetricFilter(
        scope,
        construct_id,
        log_group=log_group,
        metric_namespace=LOG_METRICS_NAMESPACE,
        metric_name=metric_name,
        filter_pattern=logs.FilterPattern.literal(f"{{ {line} }}"),
        metric_value=value,
        default_value=default_value,
        unit=unit,
    )
