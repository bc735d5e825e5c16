"""Autoscaling policies of the three services: what each one scales on, and why.

Plain functions rather than a construct: CDK places every policy under its service's scalable target
(``<Service>/Service/TaskCount/Target/<policy>``) whoever creates it, so these functions change no path and
no logical id.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2

from contract.messaging import BILLING_QUEUE, EXPRESS_QUEUE
from stacks.components.fargate_microservice import FargateMicroservice
from stacks.config import EnvironmentConfig
from stacks.data import queue_metric

SCALE_IN_COOLDOWN = Duration.minutes(5)  # scale in slowly: avoids flapping on bursty traffic
SCALE_OUT_COOLDOWN = Duration.minutes(1)


def scale_on_cpu(config: EnvironmentConfig, *services: FargateMicroservice) -> None:
    """Target-track the services' average CPU at ``config.cpu_target_percent``."""
    for service in services:
        service.scaling.scale_on_cpu_utilization(
            "Cpu",
            target_utilization_percent=config.cpu_target_percent,
            scale_in_cooldown=SCALE_IN_COOLDOWN,
            scale_out_cooldown=SCALE_OUT_COOLDOWN,
        )


def scale_gateway_on_requests(
    config: EnvironmentConfig, gateway: FargateMicroservice, target_group: elbv2.ApplicationTargetGroup
) -> None:
    """Target-track ALB requests per gateway target at ``config.requests_per_target``."""
    gateway.scaling.scale_on_request_count(
        "Requests",
        requests_per_target=config.requests_per_target,
        target_group=target_group,
        scale_in_cooldown=SCALE_IN_COOLDOWN,
        scale_out_cooldown=SCALE_OUT_COOLDOWN,
    )


def scale_inventory_on_requests(
    config: EnvironmentConfig,
    inventory: FargateMicroservice,
    *,
    cluster: ecs.ICluster,
    alb: elbv2.ApplicationLoadBalancer,
    target_group: elbv2.ApplicationTargetGroup,
) -> None:
    """Target-track ALB requests per *inventory* task.

    Inventory is not behind the ALB (only the gateway is), and every API call reaches inventory through
    the gateway, so the load signal is the gateway target group's RequestCount divided by inventory's
    running tasks. Target tracking accepts metric math only through the L1 property, hence the override.
    """
    placeholder = target_group.metrics.request_count(period=Duration.minutes(1), statistic="Sum")
    inventory.scaling.scale_to_track_custom_metric(
        "Requests",
        metric=placeholder,
        target_value=config.requests_per_target,
        scale_in_cooldown=SCALE_IN_COOLDOWN,
        scale_out_cooldown=SCALE_OUT_COOLDOWN,
    )
    policy = inventory.scaling.node.find_child("Target").node.find_child("Requests").node.default_child
    path = "TargetTrackingScalingPolicyConfiguration.CustomizedMetricSpecification"
    for key in ("MetricName", "Namespace", "Dimensions", "Statistic", "Unit"):
        policy.add_property_deletion_override(f"{path}.{key}")
    requests = {
        "Namespace": "AWS/ApplicationELB",
        "MetricName": "RequestCount",
        "Dimensions": [
            {"Name": "LoadBalancer", "Value": alb.load_balancer_full_name},
            {"Name": "TargetGroup", "Value": target_group.target_group_full_name},
        ],
    }
    tasks = {
        "Namespace": "ECS/ContainerInsights",
        "MetricName": "RunningTaskCount",
        "Dimensions": [
            {"Name": "ClusterName", "Value": cluster.cluster_name},
            {"Name": "ServiceName", "Value": inventory.service.service_name},
        ],
    }
    policy.add_property_override(
        f"{path}.Metrics",
        [
            {"Id": "requests", "ReturnData": False, "MetricStat": {"Metric": requests, "Stat": "Sum"}},
            {"Id": "tasks", "ReturnData": False, "MetricStat": {"Metric": tasks, "Stat": "Average"}},
            {
                "Id": "requests_per_task",
                "Label": "ALB requests per inventory task",
                "Expression": "requests / tasks",
                "ReturnData": True,
            },
        ],
    )


def scale_billing_on_queue(config: EnvironmentConfig, billing: FargateMicroservice, broker_name: str) -> None:
    """Step scaling on the depth of the queue billing consumes (Amazon MQ metric).

    Scale out after 2 minutes of backlog; scale in one task at a time and only after the queue has been
    empty for 10 minutes, with a long cooldown, so bursty traffic does not make it flap.
    """
    step = config.billing_queue_scale_out_depth
    queue_depth = queue_metric(broker_name, BILLING_QUEUE.name, "MessageCount", "Maximum")
    billing.scaling.scale_on_metric(
        "QueueBacklog",
        metric=queue_depth,
        scaling_steps=[
            {"upper": step, "change": 0},
            {"lower": step, "change": +1},
            {"lower": step * 10, "change": +3},
        ],
        cooldown=Duration.minutes(2),
        evaluation_periods=2,
        datapoints_to_alarm=2,
    )
    _scale_in_once_drained(billing, "QueueDrained", queue_depth)


def scale_express_on_queue(
    config: EnvironmentConfig, express: FargateMicroservice, broker_name: str, order_age: cloudwatch.IMetric
) -> None:
    """Step scaling of the express consumer on its own queue's depth and on the age of the express orders it
    receives, separately from the standard billing service (which scales on billing.orders).

    Express is the latency promise, so both scale-out policies act on one minute of evidence; scale-in is as
    slow as billing's (ten minutes with an empty express queue). Target tracking is no option for the age: it
    would scale in whenever the metric has no data (no express order in a minute).
    """
    depth_step, age_step = config.express_scale_out_depth, config.express_scale_out_age_seconds
    depth = queue_metric(broker_name, EXPRESS_QUEUE.name, "MessageCount", "Maximum")
    express.scaling.scale_on_metric(
        "ExpressBacklog",
        metric=depth,
        scaling_steps=[
            {"upper": depth_step, "change": 0},
            {"lower": depth_step, "change": +1},
            {"lower": depth_step * 10, "change": +2},
        ],
        cooldown=Duration.minutes(1),
        evaluation_periods=1,
    )
    express.scaling.scale_on_metric(
        "ExpressAge",
        metric=order_age,
        scaling_steps=[
            {"upper": age_step, "change": 0},
            {"lower": age_step, "change": +1},
            {"lower": age_step * 4, "change": +2},
        ],
        cooldown=Duration.minutes(1),
        evaluation_periods=1,
    )
    _scale_in_once_drained(express, "ExpressDrained", depth)


def _scale_in_once_drained(service: FargateMicroservice, policy_id: str, depth: cloudwatch.IMetric) -> None:
    """One task fewer after the queue has been empty for 10 minutes, with a long cooldown: a consumer scales
    in slowly, so bursty traffic does not make it flap."""
    service.scaling.scale_on_metric(
        policy_id,
        metric=depth,
        scaling_steps=[{"upper": 0, "change": -1}, {"lower": 1, "change": 0}],
        cooldown=Duration.minutes(10),
        evaluation_periods=10,
        datapoints_to_alarm=10,
    )
