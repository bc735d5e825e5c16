"""The age of express orders as a CloudWatch metric, from billing's own log lines.

Amazon MQ publishes each queue's depth (``MessageCount``, ``MessageReadyCount``, ...) but no message age. Billing
logs one ``"order batch"`` line per batch with the age of its oldest order (since the gateway published it,
from the AMQP timestamp: ``services/billing/lanes.py``); a CloudWatch Logs metric filter on each log group of
a service that consumes express orders turns the express lines into one metric. No sidecar, no
PutMetricData permission, no code in the request path. Resolution: whole seconds (the AMQP timestamp's).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_logs as logs
from constructs import Construct

from contract.messaging import EXPRESS
from stacks.components.log_metrics import LOG_METRICS_NAMESPACE, log_metric_filter

EXPRESS_AGE_METRIC = "ExpressOrderAgeSeconds"
#: The line billing writes per batch (``billing.lanes.Lane.report_age``) and its fields.
BATCH_LINE = f'$.message = "order batch" && $.priority = "{EXPRESS}" && $.oldest_age_seconds >= 0'


def express_order_age(scope: Construct, log_groups: Mapping[str, logs.ILogGroup]) -> cloudwatch.Metric:
    """One metric filter per log group (by label), all feeding ``EXPRESS_AGE_METRIC``; returns its per-minute
    maximum: the oldest express order any consumer received in that minute."""
    for label, log_group in log_groups.items():
        log_metric_filter(
            scope,
            f"{label}ExpressAgeFilter",
            log_group,
            EXPRESS_AGE_METRIC,
            BATCH_LINE,
            "$.oldest_age_seconds",
            unit=cloudwatch.Unit.SECONDS,
        )
    return cloudwatch.Metric(
        namespace=LOG_METRICS_NAMESPACE,
        metric_name=EXPRESS_AGE_METRIC,
        statistic="Maximum",
        unit=cloudwatch.Unit.SECONDS,
        period=Duration.minutes(1),
    )
