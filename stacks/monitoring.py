"""MonitoringStack: dashboard, alarms to an SNS topic with e-mail, and the monthly AWS Budget.

The alarms are a table (``alarm_specs``) over named metrics (``system_metrics``); the stack creates one
CloudWatch alarm per row, each notifying the same topic on ALARM and OK. A new alarm is one row.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from contract.messaging import BILLING_QUEUE
from stacks.compute import ComputeStack
from stacks.config import EnvironmentConfig
from stacks.data import DataStack, queue_metric

FIVE_MINUTES = Duration.minutes(5)
ABOVE = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
AT_LEAST = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
BELOW = cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD
MISSING_IS_OK = cloudwatch.TreatMissingData.NOT_BREACHING
MISSING_IS_BAD = cloudwatch.TreatMissingData.BREACHING
#: The databases, by the label their alarms and dashboard lines carry.
DATABASES = ("Inventory", "Billing")


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
        AlarmSpec("QueueBacklog", "queue_depth", config.queue_backlog_threshold, 15,
                  f"{queue} backlog above the threshold for 15 minutes", datapoints_to_alarm=15,
                  missing_data=MISSING_IS_OK),
        AlarmSpec("DeadLetters", "dlq_depth", 0, 1, f"A message reached {dlq}: an order could not be processed",
                  comparison=ABOVE, missing_data=MISSING_IS_OK),
    ]  # fmt: skip
    for label in DATABASES:
        table.append(AlarmSpec(f"{label}DbCpu", f"{label}DbCpu", 80, 3, f"{label} database CPU above 80 %"))
        table.append(
            AlarmSpec(f"{label}DbStorage", f"{label}DbStorage", 2 * 1024**3, 1,
                      f"{label} database has less than 2 GiB free storage", comparison=BELOW)
        )  # fmt: skip
    return tuple(table)


def system_metrics(data: DataStack, compute: ComputeStack) -> dict[str, cloudwatch.IMetric]:
    """The metrics alarms and dashboard refer to, by name."""
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
    for prefix, queue in (("queue", BILLING_QUEUE.name), ("dlq", BILLING_QUEUE.dead_letter_queue)):
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
    for label in DATABASES:
        instance = getattr(data, f"{label.lower()}_db").instance
        metrics[f"{label}DbCpu"] = instance.metric_cpu_utilization(period=FIVE_MINUTES)
        metrics[f"{label}DbStorage"] = instance.metric_free_storage_space(period=FIVE_MINUTES)
    return metrics


def services_of(compute: ComputeStack) -> dict:
    """The Fargate services by name, in dashboard order."""
    return {"gateway": compute.gateway, "inventory": compute.inventory, "billing": compute.billing}


class MonitoringStack(Stack):
    """Observability of the whole system; every alarm notifies the same encrypted SNS topic."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        data: DataStack,
        compute: ComputeStack,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)

        # CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed SNS key, hence a
        # customer-managed key whose policy lets CloudWatch use it.
        key = kms.Key(self, "AlarmTopicKey", enable_key_rotation=True, description="Alarm topic encryption")
        key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        self.topic = sns.Topic(self, "AlarmTopic", master_key=key, enforce_ssl=True)
        if config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        action = cloudwatch_actions.SnsAction(self.topic)

        metrics = system_metrics(data, compute)
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        for spec in alarm_specs(config):
            alarm = cloudwatch.Alarm(
                self,
                spec.id,
                metric=metrics[spec.metric],
                threshold=spec.threshold,
                comparison_operator=spec.comparison,
                evaluation_periods=spec.evaluation_periods,
                datapoints_to_alarm=spec.datapoints_to_alarm,
                alarm_description=spec.description,
                treat_missing_data=spec.missing_data,
            )
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
            self.alarms[spec.id] = alarm

        self._dashboard(config, data, compute, metrics)
        self._budget(config)

    def _dashboard(
        self, config: EnvironmentConfig, data: DataStack, compute: ComputeStack, m: dict[str, cloudwatch.IMetric]
    ) -> None:
        services = services_of(compute)
        databases = {label.lower(): getattr(data, f"{label.lower()}_db").instance for label in DATABASES}
        queue, dlq = BILLING_QUEUE.name, BILLING_QUEUE.dead_letter_queue
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{config.prefix}-overview")
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="ALB requests", left=[m["requests"]], width=8),
            cloudwatch.GraphWidget(
                title="ALB 4xx / 5xx",
                left=[m["target_4xx"], m["elb_4xx"]],
                right=[m["target_5xx"], m["elb_5xx"]],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Gateway latency p50 / p99", left=[m["latency_p50"], m["latency_p99"]], width=8
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="CPU utilization (%)",
                left=[svc.service.metric_cpu_utilization(label=name) for name, svc in services.items()],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Memory utilization (%)",
                left=[svc.service.metric_memory_utilization(label=name) for name, svc in services.items()],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Running tasks", left=[m[f"running_{name}"].with_(label=name) for name in services], width=8
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="RDS CPU (%)",
                left=[db.metric_cpu_utilization(label=name) for name, db in databases.items()],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="RDS connections",
                left=[db.metric_database_connections(label=name) for name, db in databases.items()],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="RDS free storage (bytes)",
                left=[db.metric_free_storage_space(label=name) for name, db in databases.items()],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title=f"{queue} depth / consumers", left=[m["queue_depth"]], right=[m["queue_consumers"]], width=12
            ),
            cloudwatch.GraphWidget(
                title=f"{dlq} depth / consumers", left=[m["dlq_depth"]], right=[m["dlq_consumers"]], width=12
            ),
        )

    def _budget(self, config: EnvironmentConfig) -> None:
        """Monthly cost budget with e-mail alerts at 80 % and 100 % of actual spend."""
        if not config.alarm_email:
            return
        subscriber = budgets.CfnBudget.SubscriberProperty(subscription_type="EMAIL", address=config.alarm_email)
        budgets.CfnBudget(
            self,
            "MonthlyBudget",
            budget=budgets.CfnBudget.BudgetDataProperty(
                budget_name=f"{config.prefix}-monthly",
                budget_type="COST",
                time_unit="MONTHLY",
                budget_limit=budgets.CfnBudget.SpendProperty(amount=config.monthly_budget_usd, unit="USD"),
            ),
            notifications_with_subscribers=[
                budgets.CfnBudget.NotificationWithSubscribersProperty(
                    notification=budgets.CfnBudget.NotificationProperty(
                        notification_type="ACTUAL",
                        comparison_operator="GREATER_THAN",
                        threshold=threshold,
                        threshold_type="PERCENTAGE",
                    ),
                    subscribers=[subscriber],
                )
                for threshold in (80, 100)
            ],
        )
