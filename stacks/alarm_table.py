"""The alarm table of the MonitoringStack and the named metrics its rows and the dashboard refer to.

One row (``AlarmSpec``) per failure mode; every alarm notifies the same SNS topic on ALARM and OK, and each
has a runbook line in docs/operations.md ("Alarms on AWS"). Service-level HTTP metrics come from CloudWatch
Logs metric filters on the services' JSON access-log lines (``service_log_metrics``): no sidecar, no code
change (the cost comparison is in docs/aws-deployment.md, "Cost").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from contract import posters, saga
from contract import services as contract_services
from contract.limits import RATE_LIMIT_STORE_DOWN_MESSAGE
from contract.messaging import BILLING_QUEUE, EXPRESS_QUEUE
from stacks.components.log_metrics import log_metric_filter
from stacks.components.postgres_database import PostgresDatabase
from stacks.compute import ComputeStack
from stacks.config import EnvironmentConfig
from stacks.data import DataStack, queue_metric

FIVE_MINUTES = Duration.minutes(5)
ABOVE = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
AT_LEAST = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
BELOW = cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD
MISSING_IS_OK = cloudwatch.TreatMissingData.NOT_BREACHING
MISSING_IS_BAD = cloudwatch.TreatMissingData.BREACHING
#: Services whose access logs are turned into metrics (label, attribute of the compute stack).
LOGGED_SERVICES = ("Gateway", "Inventory", "Billing")
#: Services with a saga outbox (services/common/outbox.py), their outbox table, and how old its oldest pending
#: event may get: the relay publishes within a second when the broker is up, so two minutes means it cannot.
OUTBOX_SERVICES = (contract_services.BILLING.name, contract_services.INVENTORY.name)
OUTBOX_TABLE = "outbox"
OUTBOX_STUCK_SECONDS = 120
#: The outbox gauge as the ADOT sidecar exports it (components/telemetry.py: namespace Movies/<service>).
OUTBOX_AGE_METRIC = "outbox_oldest_pending_age_seconds"


def billing_shard_label(shard: int) -> str:
    """The label of billing shard ``shard``'s alarms and dashboard row: ``Billing`` for shard 0 (billing_db, whose
    alarms keep their names), ``BillingShard<k>`` for k >= 1."""
    return "Billing" if shard == 0 else f"BillingShard{shard}"


def database_labels(config: EnvironmentConfig) -> tuple[str, ...]:
    """The databases, by the label their alarms and dashboard lines carry: inventory, then each billing shard."""
    return ("Inventory", *(billing_shard_label(shard) for shard in range(config.billing_shards)))


def databases_of(data: DataStack) -> dict[str, PostgresDatabase]:
    """The database constructs by the labels of ``database_labels`` (same order)."""
    shards = {billing_shard_label(shard): db for shard, db in enumerate(data.billing_shards)}
    return {"Inventory": data.inventory_db, **shards}


@dataclass(frozen=True)
class AlarmSpec:
    """One alarm: its construct id, the named metric it watches (``system_metrics``) and when it fires."""

    id: str
    metric: str
    threshold: float
    evaluation_periods: int
    description: str
    comparison: cloudwatch.ComparisonOperator = AT_LEAST
    datapoints_to_alarm: int | None = None
    missing_data: cloudwatch.TreatMissingData | None = None


def alarm_specs(config: EnvironmentConfig) -> tuple[AlarmSpec, ...]:
    """Every alarm of the system; thresholds that differ per environment come from ``config``."""
    queue, dlq = BILLING_QUEUE.name, BILLING_QUEUE.dead_letter_queue
    table = [
        AlarmSpec("Alb5xxRate", "error_rate", 5, 3, "More than 5 % of ALB requests answered 5xx",
                  datapoints_to_alarm=2, missing_data=MISSING_IS_OK),
        AlarmSpec("AlbLatencyP99", "latency_p99", config.latency_p99_threshold_seconds, 3,
                  "p99 gateway response time above the threshold", datapoints_to_alarm=2, missing_data=MISSING_IS_OK),
        AlarmSpec("UnhealthyTargets", "unhealthy_targets", 0, 3, "At least one gateway target is unhealthy",
                  comparison=ABOVE, missing_data=MISSING_IS_OK),
        AlarmSpec("BillingNotRunning", "running_billing", 1, 3,
                  f"No billing task is running: orders pile up in {queue}", comparison=BELOW,
                  missing_data=MISSING_IS_BAD),
        AlarmSpec("GatewayTasksBelowMinimum", "running_gateway", config.gateway.min_tasks, 3,
                  f"Fewer than {config.gateway.min_tasks} gateway tasks running (the scaling minimum)",
                  comparison=BELOW, missing_data=MISSING_IS_BAD),
        AlarmSpec("QueueBacklog", "queue_depth", config.queue_backlog_threshold, 15,
                  f"{queue} backlog above the threshold for 15 minutes", datapoints_to_alarm=15,
                  missing_data=MISSING_IS_OK),
        AlarmSpec("DeadLetters", "dlq_depth", 0, 1, f"A message reached {dlq}: an order could not be processed",
                  comparison=ABOVE, missing_data=MISSING_IS_OK),
        AlarmSpec("ExpressOrderAge", "express_order_age", config.express_age_alarm_seconds, 3,
                  f"Express orders waited more than {config.express_age_alarm_seconds} s before billing received them",
                  datapoints_to_alarm=2, missing_data=MISSING_IS_OK),
        AlarmSpec("ExpressBacklog", "express_depth", config.express_backlog_threshold, 5,
                  f"{EXPRESS_QUEUE.name} backlog above the threshold for 5 minutes", datapoints_to_alarm=5,
                  missing_data=MISSING_IS_OK),
        AlarmSpec("ExpressDeadLetters", "express_dlq_depth", 0, 1,
                  f"A message reached {EXPRESS_QUEUE.dead_letter_queue}: an express order could not be processed",
                  comparison=ABOVE, missing_data=MISSING_IS_OK),
        AlarmSpec("BillingExpressNotRunning", "running_billing_express", 1, 3,
                  "No express consumer task is running: express orders wait for the standard billing service",
                  comparison=BELOW, missing_data=MISSING_IS_BAD),
        AlarmSpec("Inventory5xxRate", "inventory_error_rate", 5, 3,
                  "More than 5 % of inventory responses are 5xx (from its access log)", datapoints_to_alarm=2,
                  missing_data=MISSING_IS_OK),
        AlarmSpec("InventoryLatencyP99", "inventory_latency_p99", config.latency_p99_threshold_seconds * 1000, 3,
                  "p99 inventory response time (ms, from its access log) above the threshold",
                  datapoints_to_alarm=2, missing_data=MISSING_IS_OK),
        AlarmSpec("BrokerMemory", "broker_memory_percent", 80, 3,
                  "Broker memory above 80 % of its high watermark: at 100 % RabbitMQ blocks every publisher",
                  missing_data=MISSING_IS_BAD),
        AlarmSpec("BrokerDisk", "broker_disk_headroom", 2, 3,
                  "Broker free disk below twice its limit: at the limit RabbitMQ blocks every publisher",
                  comparison=BELOW, missing_data=MISSING_IS_BAD),
        AlarmSpec("BrokerCpu", "broker_cpu", 80, 3, "Broker CPU above 80 % on a node for 15 minutes"),
        AlarmSpec("RateLimitStoreUnavailable", "rate_limit_store_unavailable", 1, 3,
                  "The gateway cannot reach its rate-limit store for 15 minutes: requests pass unthrottled",
                  datapoints_to_alarm=3, missing_data=MISSING_IS_OK),
    ]  # fmt: skip
    for pipe in posters.PIPES:
        table.append(
            AlarmSpec(f"{_camel(pipe.name)}DeadLetters", f"{pipe.name}_dlq_depth", 0, 1,
                      f"A message reached {config.poster_queue_name(pipe.dead_letter_queue)}: "
                      f"{pipe.consumer} gave up on it after {posters.MAX_RECEIVE_COUNT} receives",
                      comparison=ABOVE, missing_data=MISSING_IS_OK)
        )  # fmt: skip
    for name in posters.FILTERS:
        table.append(
            AlarmSpec(f"Poster{_camel(name)}Errors", f"poster_{name}_errors", 0, 1,
                      f"The poster filter {name} failed (an invocation raised or timed out); SQS retries the batch",
                      comparison=ABOVE, missing_data=MISSING_IS_OK)
        )  # fmt: skip
    for queue in saga.SAGA_QUEUES:
        table.append(
            AlarmSpec(f"{_camel(queue.consumer)}SagaDeadLetters", f"{queue.name}_dlq_depth", 0, 1,
                      f"A saga event reached {queue.dead_letter_queue}: {queue.consumer} could not apply it",
                      comparison=ABOVE, missing_data=MISSING_IS_OK)
        )  # fmt: skip
    for service in OUTBOX_SERVICES:
        table.append(
            AlarmSpec(f"{_camel(service)}OutboxStuck", f"{service}_outbox_age", OUTBOX_STUCK_SECONDS, 2,
                      f"{service}'s oldest outbox event waited more than {OUTBOX_STUCK_SECONDS} s: saga events are "
                      "not being published", comparison=ABOVE, datapoints_to_alarm=2, missing_data=MISSING_IS_OK)
        )  # fmt: skip
    table.append(
        AlarmSpec("InvoicerErrors", "invoicer_errors", 0, 1,
                  "The invoicer failed (S3 or the broker away, a timeout); the broker redelivers the order",
                  comparison=ABOVE, missing_data=MISSING_IS_OK)
    )  # fmt: skip
    for label in database_labels(config):
        what = re.sub(r"Shard(\d+)$", r" shard \1", label)  # BillingShard1 -> "Billing shard 1"
        table += [
            AlarmSpec(f"{label}DbCpu", f"{label}DbCpu", 80, 3, f"{what} database CPU above 80 %"),
            AlarmSpec(f"{label}DbStorage", f"{label}DbStorage", 2 * 1024**3, 1,
                      f"{what} database has less than 2 GiB free storage", comparison=BELOW),
            AlarmSpec(f"{label}DbMemory", f"{label}DbMemory", config.db_freeable_memory_alarm_mib * 1024**2, 3,
                      f"{what} database freeable memory below {config.db_freeable_memory_alarm_mib} MiB",
                      comparison=BELOW),
            AlarmSpec(f"{label}DbConnections", f"{label}DbConnections", config.db_connections_alarm, 3,
                      f"{what} database connections above {config.db_connections_alarm}", comparison=ABOVE),
        ]  # fmt: skip
    return tuple(table)


def _camel(name: str) -> str:
    """``poster-uploaded`` -> ``PosterUploaded`` (alarm ids)."""
    return "".join(part.capitalize() for part in name.split("-"))


def poster_metrics(config: EnvironmentConfig) -> dict[str, cloudwatch.IMetric]:
    """Depth of each poster dead-letter queue and errors of each filter, by the physical names both the poster
    pipeline stack and this one take from ``config`` (no cross-stack reference)."""
    metrics: dict[str, cloudwatch.IMetric] = {}
    for pipe in posters.PIPES:
        metrics[f"{pipe.name}_dlq_depth"] = cloudwatch.Metric(
            namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible",
            dimensions_map={"QueueName": config.poster_queue_name(pipe.dead_letter_queue)},
            statistic="Maximum",
            period=FIVE_MINUTES,
        )
    for name in posters.FILTERS:
        metrics[f"poster_{name}_errors"] = cloudwatch.Metric(
            namespace="AWS/Lambda",
            metric_name="Errors",
            dimensions_map={"FunctionName": config.poster_function_name(name)},
            statistic="Sum",
            period=FIVE_MINUTES,
        )
    return metrics


def saga_metrics(config: EnvironmentConfig, broker_name: str) -> dict[str, cloudwatch.IMetric]:
    """Depth of each saga dead-letter queue (Amazon MQ per-queue metrics), the outbox age of each service that has
    one (exported by its ADOT sidecar: only where tracing, hence the sidecar, is on), and the invoicer's errors
    (by the function's physical name: no cross-stack reference)."""
    metrics: dict[str, cloudwatch.IMetric] = {
        f"{queue.name}_dlq_depth": queue_metric(broker_name, queue.dead_letter_queue, "MessageCount", "Maximum")
        for queue in saga.SAGA_QUEUES
    }
    for service in OUTBOX_SERVICES:
        metrics[f"{service}_outbox_age"] = cloudwatch.Metric(
            namespace=f"Movies/{service}",
            metric_name=OUTBOX_AGE_METRIC,
            dimensions_map={"outbox": OUTBOX_TABLE},
            statistic="Maximum",
            period=FIVE_MINUTES,
        )
    metrics["invoicer_errors"] = cloudwatch.Metric(
        namespace="AWS/Lambda",
        metric_name="Errors",
        dimensions_map={"FunctionName": config.invoicer_function_name},
        statistic="Sum",
        period=FIVE_MINUTES,
    )
    return metrics


def broker_node_query(broker_name: str, statistic: str, metric_name: str, label: str) -> cloudwatch.MathExpression:
    """A Metrics Insights query over every node of the broker (node names are unknown before deployment)."""
    return cloudwatch.MathExpression(
        # A CloudWatch Metrics Insights query over our own literal broker name, not SQL on a database.
        expression=f"SELECT {statistic}({metric_name}) FROM \"AWS/AmazonMQ\" WHERE Broker = '{broker_name}'",  # noqa: S608
        using_metrics={},
        label=label,
        period=FIVE_MINUTES,
    )


def service_log_metrics(scope: Construct, compute: ComputeStack) -> dict[str, cloudwatch.IMetric]:
    """Metric filters on each service's access-log lines: requests, 5xx and duration (ms), as named metrics."""
    metrics: dict[str, cloudwatch.IMetric] = {}
    request_line = '$.message = "request"'
    for label in LOGGED_SERVICES:
        log_group = getattr(compute, label.lower()).log_group
        filters = {
            "requests": (f"{label}Requests", request_line, "1", 0),
            "5xx": (f"{label}5xx", f"{request_line} && $.status >= 500", "1", 0),
            # No default value: a zero for every non-request line would drag the percentiles down.
            "latency": (f"{label}DurationMs", request_line, "$.duration_ms", None),
        }
        for key, (metric_name, pattern, value, default) in filters.items():
            metric_filter = log_metric_filter(
                scope, f"{metric_name}Filter", log_group, metric_name, pattern, value, default_value=default
            )
            statistic = "p99" if key == "latency" else "Sum"
            metrics[f"{label.lower()}_{key}"] = metric_filter.metric(statistic=statistic, period=FIVE_MINUTES)
    return metrics


def system_metrics(scope: Construct, data: DataStack, compute: ComputeStack) -> dict[str, cloudwatch.IMetric]:
    """The metrics alarms and dashboard refer to, by name (creates the log metric filters in ``scope``)."""
    alb = compute.alb
    metrics: dict[str, cloudwatch.IMetric] = {
        "requests": alb.metrics.request_count(period=FIVE_MINUTES),
        "elb_5xx": alb.metrics.custom("HTTPCode_ELB_5XX_Count", statistic="Sum", period=FIVE_MINUTES),
        "target_5xx": alb.metrics.custom("HTTPCode_Target_5XX_Count", statistic="Sum", period=FIVE_MINUTES),
        "target_4xx": alb.metrics.custom("HTTPCode_Target_4XX_Count", statistic="Sum", period=FIVE_MINUTES),
        "elb_4xx": alb.metrics.custom("HTTPCode_ELB_4XX_Count", statistic="Sum", period=FIVE_MINUTES),
        "latency_p50": alb.metrics.target_response_time(statistic="p50", period=FIVE_MINUTES),
        "latency_p99": alb.metrics.target_response_time(statistic="p99", period=FIVE_MINUTES),
        "unhealthy_targets": compute.target_group.metrics.unhealthy_host_count(
            statistic="Maximum", period=Duration.minutes(1)
        ),
    }
    metrics["error_rate"] = cloudwatch.MathExpression(
        expression="100 * (FILL(e5, 0) + FILL(t5, 0)) / MAX([FILL(r, 1), 1])",
        using_metrics={"e5": metrics["elb_5xx"], "t5": metrics["target_5xx"], "r": metrics["requests"]},
        label="5xx rate (%)",
        period=FIVE_MINUTES,
    )
    metrics.update(service_log_metrics(scope, compute))
    store_down = log_metric_filter(
        scope,
        "GatewayRateLimitStoreUnavailableFilter",
        compute.gateway.log_group,
        "GatewayRateLimitStoreUnavailable",
        f'$.message = "{RATE_LIMIT_STORE_DOWN_MESSAGE}"',
        "1",
        default_value=0,
    )
    metrics["rate_limit_store_unavailable"] = store_down.metric(statistic="Sum", period=FIVE_MINUTES)
    metrics["inventory_error_rate"] = cloudwatch.MathExpression(
        expression="100 * FILL(e, 0) / MAX([FILL(r, 1), 1])",
        using_metrics={"e": metrics["inventory_5xx"], "r": metrics["inventory_requests"]},
        label="inventory 5xx rate (%)",
        period=FIVE_MINUTES,
    )
    metrics["inventory_latency_p99"] = metrics["inventory_latency"]

    broker = data.broker_name
    metrics["broker_memory_percent"] = cloudwatch.MathExpression(
        expression="100 * used / limit",
        using_metrics={
            "used": broker_node_query(broker, "MAX", "RabbitMQMemUsed", "memory used"),
            "limit": broker_node_query(broker, "MIN", "RabbitMQMemLimit", "memory limit"),
        },
        label="broker memory (% of high watermark)",
        period=FIVE_MINUTES,
    )
    metrics["broker_disk_headroom"] = cloudwatch.MathExpression(
        expression="free / limit",
        using_metrics={
            "free": broker_node_query(broker, "MIN", "RabbitMQDiskFree", "disk free"),
            "limit": broker_node_query(broker, "MAX", "RabbitMQDiskFreeLimit", "disk free limit"),
        },
        label="broker free disk / limit",
        period=FIVE_MINUTES,
    )
    metrics["broker_cpu"] = broker_node_query(broker, "MAX", "SystemCpuUtilization", "broker CPU (%)")

    queues = {
        "queue": BILLING_QUEUE.name,
        "dlq": BILLING_QUEUE.dead_letter_queue,
        "express": EXPRESS_QUEUE.name,
        "express_dlq": EXPRESS_QUEUE.dead_letter_queue,
    }
    for prefix, queue in queues.items():
        metrics[f"{prefix}_depth"] = queue_metric(data.broker_name, queue, "MessageCount", "Maximum")
        metrics[f"{prefix}_consumers"] = queue_metric(data.broker_name, queue, "ConsumerCount", "Minimum")
    for name, service in services_of(compute).items():
        metrics[f"running_{name}"] = cloudwatch.Metric(
            namespace="ECS/ContainerInsights",
            metric_name="RunningTaskCount",
            dimensions_map={"ClusterName": compute.cluster.cluster_name, "ServiceName": service.service.service_name},
            statistic="Minimum",
            period=Duration.minutes(1),
        )
    metrics["express_order_age"] = compute.express_order_age
    metrics.update(poster_metrics(compute.config))
    metrics.update(saga_metrics(compute.config, data.broker_name))
    for label, db in databases_of(data).items():
        instance = db.instance
        metrics[f"{label}DbCpu"] = instance.metric_cpu_utilization(period=FIVE_MINUTES)
        metrics[f"{label}DbStorage"] = instance.metric_free_storage_space(period=FIVE_MINUTES)
        metrics[f"{label}DbMemory"] = instance.metric_freeable_memory(period=FIVE_MINUTES, statistic="Minimum")
        metrics[f"{label}DbConnections"] = instance.metric_database_connections(
            period=FIVE_MINUTES, statistic="Maximum"
        )
    return metrics


def services_of(compute: ComputeStack) -> dict:
    """The Fargate services by name, in dashboard order."""
    return {
        "gateway": compute.gateway,
        "inventory": compute.inventory,
        "billing": compute.billing,
        "billing_express": compute.billing_express,
    }
