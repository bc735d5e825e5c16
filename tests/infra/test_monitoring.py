"""MonitoringStack: encrypted alarm topic, the alarms that page, dashboard content and the budget."""

from __future__ import annotations

import pytest

from billing.aggregates import LOG_MESSAGE
from contract.messaging import BILLING_QUEUE
from stacks.alarm_table import alarm_specs
from stacks.config import DERIVED_BUDGETS, ENVIRONMENTS
from tests.infra.helpers import dumps

pytestmark = pytest.mark.infra

EXPECTED_ALARMS = {
    "Alb5xxRate",
    "AlbLatencyP99",
    "UnhealthyTargets",
    "BillingNotRunning",
    "QueueBacklog",
    "DeadLetters",
    "InventoryDbCpu",
    "InventoryDbStorage",
    "BillingDbCpu",
    "BillingDbStorage",
    # issue 13: the gateway throttles unchecked while its rate-limit store is unreachable
    "RateLimitStoreUnavailable",
    # issue 11: one per failure mode the review found without an alarm
    "BrokerMemory",
    "BrokerDisk",
    "BrokerCpu",
    "Inventory5xxRate",
    "InventoryLatencyP99",
    "GatewayTasksBelowMinimum",
    "InventoryDbMemory",
    "BillingDbMemory",
    "InventoryDbConnections",
    "BillingDbConnections",
    # issue 13: express orders (the priority queue)
    "ExpressOrderAge",
    "ExpressBacklog",
    "ExpressDeadLetters",
    "BillingExpressNotRunning",
    # issue 14: the poster pipeline (a dead letter in any pipe, a failing filter)
    "PosterUploadedDeadLetters",
    "PosterValidatedDeadLetters",
    "PosterResizedDeadLetters",
    "PosterResultsDeadLetters",
    "PosterValidateErrors",
    "PosterResizeErrors",
    "PosterPublishErrors",
    # issue 15: the saga (an event in a saga dead-letter queue, events stuck in an outbox, a failing invoicer)
    "InventorySagaDeadLetters",
    "BillingSagaDeadLetters",
    "InvoicerSagaDeadLetters",
    "BillingOutboxStuck",
    "InventoryOutboxStuck",
    "InvoicerErrors",
}
#: issue 16: each billing shard k >= 1 has billing_db's four database alarms (shard 0's are BillingDb* above).
SHARD_ALARMS = {
    "dev": set(),
    "prod": {"BillingShard1DbCpu", "BillingShard1DbStorage", "BillingShard1DbMemory", "BillingShard1DbConnections"},
}


def _alarms(env):
    return {
        logical_id: alarm["Properties"]
        for logical_id, alarm in env.resources("Monitoring", "AWS::CloudWatch::Alarm").items()
    }


def _alarm(env, name):
    (found,) = [props for logical_id, props in _alarms(env).items() if logical_id.startswith(name)]
    return found


def test_alarm_topic_is_kms_encrypted_and_tls_only(any_env):
    """The SNS topic uses a customer-managed, rotated KMS key and denies non-TLS publishing."""
    topic = any_env.only("Monitoring", "AWS::SNS::Topic")["Properties"]
    assert "AlarmTopicKey" in dumps(topic["KmsMasterKeyId"])
    key = any_env.only("Monitoring", "AWS::KMS::Key")["Properties"]
    assert key["EnableKeyRotation"] is True
    assert "cloudwatch.amazonaws.com" in dumps(key["KeyPolicy"])
    policy = any_env.only("Monitoring", "AWS::SNS::TopicPolicy")["Properties"]["PolicyDocument"]
    assert any(s["Effect"] == "Deny" and "aws:SecureTransport" in dumps(s) for s in policy["Statement"])


def test_alarm_topic_has_the_configured_email_subscription(any_env):
    """The alarm e-mail from config subscribes to the topic."""
    subscription = any_env.only("Monitoring", "AWS::SNS::Subscription")["Properties"]
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("email", "alerts@example.com")


def test_all_expected_alarms_exist_and_notify_the_topic(any_env):
    """Every alarm of the issue (and of each billing shard) exists and sends ALARM and OK to the SNS topic."""
    alarms = _alarms(any_env)
    expected = EXPECTED_ALARMS | SHARD_ALARMS[any_env.name]
    found = {name for name in expected if any(logical_id.startswith(name) for logical_id in alarms)}
    assert found == expected
    for props in alarms.values():
        assert "AlarmTopic" in dumps(props["AlarmActions"])
        assert "AlarmTopic" in dumps(props["OKActions"])


def test_alarm_table_is_exactly_the_expected_alarms():
    """The table in stacks/alarm_table.py and this list agree (each row has a runbook line in the docs)."""
    for name, config in ENVIRONMENTS.items():
        assert {spec.id for spec in alarm_specs(config)} == EXPECTED_ALARMS | SHARD_ALARMS[name]


def test_every_alarm_has_a_runbook_line():
    """docs/operations.md's alarm table names every alarm (what it means, what to do)."""
    from tests.infra.helpers import REPO_ROOT

    text = (REPO_ROOT / "docs" / "operations.md").read_text()
    missing = [name for name in EXPECTED_ALARMS if f"`{name}`" not in text]
    assert missing == []


def test_any_dead_letter_pages(any_env):
    """A single message in the contract's dead-letter queue (billing.orders.dlq) raises the alarm."""
    alarm = _alarm(any_env, "DeadLetters")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/AmazonMQ", "MessageCount")
    assert {"Name": "Queue", "Value": BILLING_QUEUE.dead_letter_queue} in alarm["Dimensions"]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)


def test_no_running_billing_task_pages_even_without_data(any_env):
    """Fewer than one running billing task alarms, and missing data counts as breaching."""
    alarm = _alarm(any_env, "BillingNotRunning")
    assert alarm["MetricName"] == "RunningTaskCount"
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("LessThanThreshold", 1)
    assert alarm["TreatMissingData"] == "breaching"


def test_5xx_alarm_is_a_rate_of_all_requests(any_env):
    """The 5xx alarm divides ELB and target 5xx counts by the request count (percent)."""
    alarm = _alarm(any_env, "Alb5xxRate")
    expression = next(m["Expression"] for m in alarm["Metrics"] if "Expression" in m)
    assert "e5" in expression and "t5" in expression and "/" in expression
    assert alarm["Threshold"] == 5


def test_latency_alarm_uses_p99(any_env):
    """p99 target response time against the configured threshold."""
    alarm = _alarm(any_env, "AlbLatencyP99")
    assert alarm["ExtendedStatistic"] == "p99"
    assert alarm["Threshold"] == {"dev": 2.0, "prod": 1.0}[any_env.name]


def test_dashboard_shows_queue_and_dead_letter_queue(any_env):
    """The dashboard graphs the queue and its dead-letter queue, RDS, ALB, broker and the access-log metrics."""
    body = dumps(any_env.only("Monitoring", "AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"])
    for text in (
        BILLING_QUEUE.dead_letter_queue,
        "RabbitMQMemUsed",
        "RabbitMQDiskFree",
        "SystemCpuUtilization",
        "FreeableMemory",
        "InventoryDurationMs",
        "Inventory5xx",
        "ConsumerCount",
        "MessageCount",
        "TargetResponseTime",
        "p99",
        "DatabaseConnections",
        "FreeStorageSpace",
        "MemoryUtilization",
        "RunningTaskCount",
    ):
        assert text in body, text


def test_budget_alerts_at_80_and_100_percent(any_env):
    """Monthly cost budget (the amount derived from `make cost`, stacks/budgets.json) with e-mail notifications
    at 80 % and 100 % of actual spend."""
    budget = any_env.only("Monitoring", "AWS::Budgets::Budget")["Properties"]
    assert budget["Budget"]["TimeUnit"] == "MONTHLY"
    assert budget["Budget"]["BudgetLimit"]["Amount"] == DERIVED_BUDGETS[any_env.name]
    thresholds = sorted(n["Notification"]["Threshold"] for n in budget["NotificationsWithSubscribers"])
    assert thresholds == [80, 100]


def _metric_expressions(alarm) -> list[str]:
    return [m["Expression"] for m in alarm["Metrics"] if "Expression" in m]


def test_broker_memory_is_used_over_limit_across_nodes(any_env):
    """RabbitMQMemUsed / RabbitMQMemLimit (%) over every node of this broker (Metrics Insights: node names are
    unknown before deployment); missing data pages (the broker stopped reporting)."""
    alarm = _alarm(any_env, "BrokerMemory")
    expressions = _metric_expressions(alarm)
    broker = f"Broker = 'movies-{any_env.name}-broker'"
    assert any("RabbitMQMemUsed" in e and broker in e for e in expressions)
    assert any("RabbitMQMemLimit" in e and broker in e for e in expressions)
    assert (alarm["Threshold"], alarm["TreatMissingData"]) == (80, "breaching")


def test_broker_disk_alarm_compares_free_disk_with_its_limit(any_env):
    """Free disk below twice RabbitMQ's free-disk limit pages (at the limit publishers are blocked)."""
    alarm = _alarm(any_env, "BrokerDisk")
    joined = " ".join(_metric_expressions(alarm))
    assert "RabbitMQDiskFree)" in joined and "RabbitMQDiskFreeLimit" in joined
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("LessThanThreshold", 2)


def test_broker_cpu_alarm(any_env):
    """SystemCpuUtilization of the busiest node above 80 %."""
    assert "MAX(SystemCpuUtilization)" in " ".join(_metric_expressions(_alarm(any_env, "BrokerCpu")))


def test_gateway_running_tasks_below_the_scaling_minimum_pages(any_env):
    """ECS/ContainerInsights RunningTaskCount of the gateway below its configured minimum; no data pages."""
    alarm = _alarm(any_env, "GatewayTasksBelowMinimum")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("ECS/ContainerInsights", "RunningTaskCount")
    assert alarm["Threshold"] == ENVIRONMENTS[any_env.name].gateway.min_tasks
    assert (alarm["ComparisonOperator"], alarm["TreatMissingData"]) == ("LessThanThreshold", "breaching")


@pytest.mark.parametrize(
    ("prefix", "metric", "comparison"),
    [
        ("DbMemory", "FreeableMemory", "LessThanThreshold"),
        ("DbConnections", "DatabaseConnections", "GreaterThanThreshold"),
        ("DbStorage", "FreeStorageSpace", "LessThanThreshold"),
    ],
)
def test_each_database_has_memory_connection_and_storage_alarms(any_env, prefix, metric, comparison):
    """Per database: FreeableMemory, DatabaseConnections and FreeStorageSpace, each on its own instance."""
    instances = set()
    for label in ("Inventory", "Billing"):
        alarm = _alarm(any_env, f"{label}{prefix}")
        assert (alarm["MetricName"], alarm["ComparisonOperator"]) == (metric, comparison)
        instances.add(dumps(alarm["Dimensions"]))
    assert len(instances) == 2


def test_inventory_errors_and_latency_come_from_its_access_log(any_env):
    """Metric filters on inventory's JSON access lines (status >= 500, duration_ms) feed its 5xx-rate and p99
    alarms: no sidecar and no code change."""
    filters = any_env.resources("Monitoring", "AWS::Logs::MetricFilter")
    by_metric = {
        f["Properties"]["MetricTransformations"][0]["MetricName"]: f["Properties"] for f in filters.values()
    }
    assert "$.status >= 500" in by_metric["Inventory5xx"]["FilterPattern"]
    assert by_metric["InventoryDurationMs"]["MetricTransformations"][0]["MetricValue"] == "$.duration_ms"
    assert "InventoryLogs" in dumps(by_metric["Inventory5xx"]["LogGroupName"])
    rate = _alarm(any_env, "Inventory5xxRate")
    assert any(m.get("MetricStat", {}).get("Metric", {}).get("MetricName") == "Inventory5xx" for m in rate["Metrics"])
    latency = _alarm(any_env, "InventoryLatencyP99")
    assert (latency["MetricName"], latency["ExtendedStatistic"]) == ("InventoryDurationMs", "p99")


def test_failed_deployments_of_this_cluster_reach_the_topic(any_env):
    """EventBridge: ECS Deployment State Change / SERVICE_DEPLOYMENT_FAILED (circuit breaker, rolled back) of the
    four services of this cluster goes to the alarm topic, which EventBridge may publish to (and encrypt for)."""
    rule = any_env.only("Monitoring", "AWS::Events::Rule")["Properties"]
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.ecs"]
    assert pattern["detail-type"] == ["ECS Deployment State Change"]
    assert pattern["detail"] == {"eventName": ["SERVICE_DEPLOYMENT_FAILED"]}
    assert len(pattern["resources"]) == 4
    assert all("Service" in dumps(resource) for resource in pattern["resources"])
    assert "AlarmTopic" in dumps(rule["Targets"][0]["Arn"])
    policy = any_env.only("Monitoring", "AWS::SNS::TopicPolicy")["Properties"]["PolicyDocument"]
    events_principal = {"Service": "events.amazonaws.com"}
    assert any(s["Effect"] == "Allow" and s.get("Principal") == events_principal for s in policy["Statement"])
    key_policy = any_env.only("Monitoring", "AWS::KMS::Key")["Properties"]["KeyPolicy"]
    assert "events.amazonaws.com" in dumps(key_policy)


def test_no_https_subscription_unless_configured(any_env):
    """Only the e-mail subscription exists by default; alarm_https_endpoint adds HTTPS (test below)."""
    subscriptions = any_env.resources("Monitoring", "AWS::SNS::Subscription").values()
    assert [s["Properties"]["Protocol"] for s in subscriptions] == ["email"]


def test_alarm_https_endpoint_subscribes_the_topic_over_https():
    """-c alarm_https_endpoint=https://... (PagerDuty / Opsgenie) adds an HTTPS subscription to the topic."""
    from aws_cdk.assertions import Template

    from stacks.application import build_app
    from tests.infra.helpers import cdk_context, environment_without

    url = "https://events.pagerduty.com/integration/abc123/enqueue"
    with environment_without("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION"):
        _, stage = build_app(
            context={**cdk_context(), "env": "dev", "alarm_https_endpoint": url}, nag=False, validation=False
        )
        template = Template.from_stack(stage.monitoring)
    template.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "https", "Endpoint": url})


def test_order_aggregates_come_from_the_billing_leaders_log_line(any_env):
    """Orders and revenue per minute are metric filters on billing's log group, matching the one line its
    leader logs per closed minute (billing.aggregates), and the dashboard graphs them."""
    filters = any_env.resources("Monitoring", "AWS::Logs::MetricFilter")
    by_metric = {
        f["Properties"]["MetricTransformations"][0]["MetricName"]: f["Properties"] for f in filters.values()
    }
    for metric, value in (("BillingOrdersPerMinute", "$.orders"), ("BillingRevenuePerMinute", "$.revenue")):
        assert f'$.message = "{LOG_MESSAGE}"' in by_metric[metric]["FilterPattern"]
        assert by_metric[metric]["MetricTransformations"][0]["MetricValue"] == value
        assert "BillingLogs" in dumps(by_metric[metric]["LogGroupName"])
    body = dumps(any_env.only("Monitoring", "AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"])
    assert "BillingOrdersPerMinute" in body and "BillingRevenuePerMinute" in body


def test_prod_runs_several_billing_tasks():
    """Prod runs several billing tasks: safe because only the elected leader runs the periodic jobs."""
    assert ENVIRONMENTS["prod"].billing.min_tasks >= 2
