"""MonitoringStack: encrypted alarm topic, the alarms that page, dashboard content and the budget."""

from __future__ import annotations

import pytest

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
    """Every alarm of the issue exists and sends ALARM and OK to the SNS topic."""
    alarms = _alarms(any_env)
    found = {name for name in EXPECTED_ALARMS if any(logical_id.startswith(name) for logical_id in alarms)}
    assert found == EXPECTED_ALARMS
    for props in alarms.values():
        assert "AlarmTopic" in dumps(props["AlarmActions"])
        assert "AlarmTopic" in dumps(props["OKActions"])


def test_any_dead_letter_pages(any_env):
    """A single message in billing_queue.dlq raises the alarm."""
    alarm = _alarm(any_env, "DeadLetters")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/AmazonMQ", "MessageCount")
    assert {"Name": "Queue", "Value": "billing_queue.dlq"} in alarm["Dimensions"]
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
    """The dashboard graphs depth and consumers of billing_queue and billing_queue.dlq, plus RDS and ALB."""
    body = dumps(any_env.only("Monitoring", "AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"])
    for text in (
        "billing_queue.dlq",
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
    """Monthly cost budget with e-mail notifications at 80 % and 100 % of actual spend."""
    budget = any_env.only("Monitoring", "AWS::Budgets::Budget")["Properties"]
    assert budget["Budget"]["TimeUnit"] == "MONTHLY"
    assert budget["Budget"]["BudgetLimit"]["Amount"] == {"dev": 200, "prod": 2000}[any_env.name]
    thresholds = sorted(n["Notification"]["Threshold"] for n in budget["NotificationsWithSubscribers"])
    assert thresholds == [80, 100]
