"""Express orders on AWS: billing's express consumer service, its own scaling on the express queue's depth and
order age, the metric filters that make the age, and the express alarms."""

from __future__ import annotations

import pytest

from contract import environment
from contract.messaging import BILLING_QUEUE, EXPRESS_QUEUE
from stacks.components.log_metrics import LOG_METRICS_NAMESPACE
from stacks.components.order_age import EXPRESS_AGE_METRIC
from stacks.compute import EXPRESS_CONSUMER
from stacks.config import ENVIRONMENTS
from tests.infra.helpers import container_of, contract_names_of, dumps, env_vars, service_of

pytestmark = pytest.mark.infra


def _scaling_alarms(env, construct: str) -> list[dict]:
    """The alarms driving the step-scaling policies of the service construct ``construct``."""
    return [
        alarm["Properties"]
        for alarm in env.resources("Compute", "AWS::CloudWatch::Alarm").values()
        if f'"{construct}ServiceTaskCount' in dumps(alarm["Properties"].get("AlarmActions", []))
    ]


def _queue_of(alarm: dict) -> str | None:
    return next((d["Value"] for d in alarm.get("Dimensions", []) if d["Name"] == "Queue"), None)


def test_the_express_consumer_runs_billings_image_on_the_express_queue_only(any_env):
    """Same image (build args SERVICE=billing), BILLING_CONSUME=express, and both queue names of the contract."""
    env = env_vars(container_of(any_env, EXPRESS_CONSUMER))
    assert env[environment.BILLING_CONSUME.name] == "express"
    assert env[environment.BILLING_EXPRESS_QUEUE.name] == EXPRESS_QUEUE.name
    assert env[environment.BILLING_QUEUE.name] == BILLING_QUEUE.name
    assert container_of(any_env, EXPRESS_CONSUMER)["Image"] == container_of(any_env, "billing")["Image"]


def test_the_express_consumer_reads_only_billings_variables(any_env):
    """It is billing with one setting changed: every variable is one billing reads, no credential is plain."""
    container = container_of(any_env, EXPRESS_CONSUMER)
    assert set(env_vars(container)) <= contract_names_of("billing")
    assert "Secrets" not in container
    assert not {v.name for v in environment.variables_of("billing") if v.secret} & set(env_vars(container))


def test_the_standard_billing_service_consumes_every_queue(any_env):
    """The standard service leaves BILLING_CONSUME at its default (all: express first) and knows both queues."""
    env = env_vars(container_of(any_env, "billing"))
    assert environment.BILLING_CONSUME.name not in env
    assert env[environment.BILLING_EXPRESS_QUEUE.name] == EXPRESS_QUEUE.name


def test_the_gateway_knows_the_express_queue(any_env):
    """The gateway publishes express orders to the contract's express queue."""
    assert env_vars(container_of(any_env, "gateway"))[environment.BILLING_EXPRESS_QUEUE.name] == EXPRESS_QUEUE.name


def test_the_express_consumer_is_a_private_service_in_billings_security_group(any_env):
    """No public IP, the billing tasks' security group (same database and broker), no Service Connect."""
    service = service_of(any_env, EXPRESS_CONSUMER)["Properties"]
    network = service["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    assert network["SecurityGroups"] == service_of(any_env, "billing")["Properties"]["NetworkConfiguration"][
        "AwsvpcConfiguration"
    ]["SecurityGroups"]
    assert "ServiceConnectConfiguration" not in service


def test_the_express_consumer_scales_out_on_its_own_queue_depth(any_env):
    """A step-scaling alarm on AWS/AmazonMQ MessageCount of billing.orders.express (one minute of evidence)
    adds tasks; none of its alarms watches the standard queue."""
    alarms = _scaling_alarms(any_env, "BillingExpress")
    queues = {_queue_of(alarm) for alarm in alarms if alarm.get("Namespace") == "AWS/AmazonMQ"}
    assert queues == {EXPRESS_QUEUE.name}
    (upper,) = [
        a for a in alarms
        if a.get("Namespace") == "AWS/AmazonMQ" and a["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    ]  # fmt: skip
    assert (upper["MetricName"], upper["EvaluationPeriods"]) == ("MessageCount", 1)
    assert upper["Threshold"] == ENVIRONMENTS[any_env.name].express_scale_out_depth


def test_the_express_consumer_scales_out_on_the_age_of_express_orders(any_env):
    """A step-scaling alarm on the express order age metric (Maximum per minute) adds tasks."""
    (age,) = [a for a in _scaling_alarms(any_env, "BillingExpress") if a.get("MetricName") == EXPRESS_AGE_METRIC]
    assert (age["Namespace"], age["Statistic"], age["Period"]) == (LOG_METRICS_NAMESPACE, "Maximum", 60)
    assert age["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert age["Threshold"] == ENVIRONMENTS[any_env.name].express_scale_out_age_seconds


def test_the_express_consumer_scales_in_slowly(any_env):
    """Scale-in: one task after 10 minutes with an empty express queue, 10-minute cooldown."""
    policies = [
        p["Properties"]["StepScalingPolicyConfiguration"]
        for p in any_env.resources("Compute", "AWS::ApplicationAutoScaling::ScalingPolicy").values()
        if "BillingExpressServiceTaskCount" in dumps(p["Properties"]["ScalingTargetId"])
    ]
    (scale_in,) = [p for p in policies if any(s["ScalingAdjustment"] < 0 for s in p["StepAdjustments"])]
    assert [s["ScalingAdjustment"] for s in scale_in["StepAdjustments"]] == [-1]
    assert scale_in["Cooldown"] >= 600
    (lower,) = [
        a for a in _scaling_alarms(any_env, "BillingExpress") if a["ComparisonOperator"] == "LessThanOrEqualToThreshold"
    ]
    assert (_queue_of(lower), lower["EvaluationPeriods"], lower["DatapointsToAlarm"]) == (EXPRESS_QUEUE.name, 10, 10)


def test_the_express_consumer_scales_within_its_own_bounds(any_env):
    """Its task-count bounds are billing_express's from the config, separate from billing's."""
    sizing = ENVIRONMENTS[any_env.name].billing_express
    (target,) = [
        t["Properties"]
        for t in any_env.resources("Compute", "AWS::ApplicationAutoScaling::ScalableTarget").values()
        if "BillingExpressService" in dumps(t["Properties"]["ResourceId"])
    ]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (sizing.min_tasks, sizing.max_tasks)


def test_both_billing_log_groups_feed_the_express_age_metric(any_env):
    """A metric filter on each billing service's log group turns its express "order batch" lines into the age."""
    filters = [
        f["Properties"]
        for f in any_env.resources("Compute", "AWS::Logs::MetricFilter").values()
        if f["Properties"]["MetricTransformations"][0]["MetricName"] == EXPRESS_AGE_METRIC
    ]
    assert sorted(dumps(f["LogGroupName"]) for f in filters) == sorted(
        [dumps({"Ref": lid}) for lid in _log_group_ids(any_env)]
    )
    for metric_filter in filters:
        assert '$.priority = "express"' in metric_filter["FilterPattern"]
        assert metric_filter["MetricTransformations"][0]["MetricValue"] == "$.oldest_age_seconds"


def _log_group_ids(env) -> list[str]:
    groups = env.resources("Compute", "AWS::Logs::LogGroup")
    return [lid for lid in groups if lid.startswith(("BillingLogs", "BillingExpressLogs"))]


@pytest.mark.parametrize(
    ("alarm", "queue"),
    [("ExpressBacklog", EXPRESS_QUEUE.name), ("ExpressDeadLetters", EXPRESS_QUEUE.dead_letter_queue)],
)
def test_express_queue_alarms_watch_the_express_queues(any_env, alarm, queue):
    """The express backlog and dead-letter alarms watch billing.orders.express and its .dlq."""
    (props,) = [p for lid, p in _monitoring_alarms(any_env).items() if lid.startswith(alarm)]
    assert (props["Namespace"], props["MetricName"], _queue_of(props)) == ("AWS/AmazonMQ", "MessageCount", queue)


def test_express_order_age_pages_above_the_configured_age(any_env):
    """ExpressOrderAge watches the age metric at express_age_alarm_seconds and notifies the topic."""
    (props,) = [p for lid, p in _monitoring_alarms(any_env).items() if lid.startswith("ExpressOrderAge")]
    assert (props["Namespace"], props["MetricName"]) == (LOG_METRICS_NAMESPACE, EXPRESS_AGE_METRIC)
    assert props["Threshold"] == ENVIRONMENTS[any_env.name].express_age_alarm_seconds
    assert "AlarmTopic" in dumps(props["AlarmActions"])


def _monitoring_alarms(env) -> dict[str, dict]:
    return {lid: a["Properties"] for lid, a in env.resources("Monitoring", "AWS::CloudWatch::Alarm").items()}
