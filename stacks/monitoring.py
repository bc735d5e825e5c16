"""MonitoringStack: dashboard, alarms and ECS deployment failures to an SNS topic, and the monthly AWS Budget.

The alarms are a table (``alarm_specs`` in ``stacks/alarm_table.py``) over named metrics (``system_metrics``);
the stack creates one CloudWatch alarm per row, each notifying the same topic on ALARM and OK. A new alarm is
one row (and one runbook line in docs/operations.md). The topic mails ``alarm_email`` and, when configured,
posts to ``alarm_https_endpoint`` (PagerDuty / Opsgenie).
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from contract.messaging import BILLING_QUEUE, EXPRESS_QUEUE
from stacks.alarm_table import alarm_specs, billing_shard_label, services_of, system_metrics
from stacks.components.log_metrics import log_metric_filter
from stacks.components.outside_check import OutsideCheck
from stacks.compute import ComputeStack
from stacks.config import EnvironmentConfig
from stacks.data import DataStack

#: The ECS event of a deployment the circuit breaker stopped (and rolled back: rollback is on everywhere).
DEPLOYMENT_FAILED = "SERVICE_DEPLOYMENT_FAILED"


def alarm_topic(scope: Construct, config: EnvironmentConfig) -> sns.Topic:
    """The encrypted SNS topic alarms (and EventBridge rules) of ``scope`` notify, subscribed to the config's
    alarm e-mail and HTTPS endpoint. One per region that has alarms: a CloudWatch alarm notifies a topic of its
    own region only (the geode's, in us-east-1, has its own)."""
    # CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed SNS key, hence a
    # customer-managed key whose policy lets CloudWatch use it.
    key = kms.Key(scope, "AlarmTopicKey", enable_key_rotation=True, description="Alarm topic encryption")
    key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
    # EventBridge publishes the ECS deployment failures to the same encrypted topic.
    key.grant(iam.ServicePrincipal("events.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
    topic = sns.Topic(scope, "AlarmTopic", master_key=key, enforce_ssl=True)
    if config.alarm_email:
        topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
    if config.alarm_https_endpoint:
        # PagerDuty / Opsgenie integration URL; the service confirms the subscription itself.
        topic.add_subscription(
            subscriptions.UrlSubscription(config.alarm_https_endpoint, protocol=sns.SubscriptionProtocol.HTTPS)
        )
    return topic


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
        auth=None,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)

        self.topic = alarm_topic(self, config)
        action = cloudwatch_actions.SnsAction(self.topic)

        metrics = system_metrics(self, data, compute)
        metrics.update(self._order_aggregates(compute))
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

        self._deployment_failures(compute)
        self._dashboard(config, data, compute, metrics)
        self.outside_check: OutsideCheck | None = None
        if config.outside_checks and auth is not None:
            self._outside_check(config, compute, auth, action)
        # One budget per environment (the account's spend): in the first stamp only.
        if config.stamp is None:
            self._budget(config)

    def _outside_check(self, config: EnvironmentConfig, compute: ComputeStack, auth, action) -> None:
        """The stamp's canary (stacks/components/outside_check.py), its alarm and its dashboard row."""
        self.outside_check = OutsideCheck(self, "OutsideCheck", config=config, url=compute.web.url, auth=auth)
        runs = 2
        alarm = cloudwatch.Alarm(
            self,
            "OutsideCheckFailing",
            metric=self.outside_check.success_percent,
            threshold=100,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=runs,
            alarm_description=(
                f"The outside check (canary {self.outside_check.canary.canary_name}) failed {runs} runs in a row: "
                "/health or an authenticated GET /api/movies through the public URL does not answer 200 "
                "(docs/operations.md, 'Outside check failing')."
            ),
            # A canary that stopped running is no longer watching: page.
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        self.alarms["OutsideCheckFailing"] = alarm
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Outside check: canary runs passed (%): /health and an authenticated API call",
                left=[self.outside_check.success_percent.with_(label="runs passed")],
                left_y_axis=cloudwatch.YAxisProps(min=0, max=100),
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Outside check: canary run duration (ms)",
                left=[self.outside_check.canary.metric_duration(label="duration")],
                width=12,
            ),
        )

    def _deployment_failures(self, compute: ComputeStack) -> None:
        """A failed (circuit breaker: rolled back) deployment of any of this cluster's services notifies the topic."""
        services = services_of(compute).values()
        self.deployment_failed_rule = events.Rule(
            self,
            "DeploymentFailed",
            description="ECS deployment failed and rolled back (circuit breaker) in this environment's cluster",
            event_pattern=events.EventPattern(
                source=["aws.ecs"],
                detail_type=["ECS Deployment State Change"],
                # The events name the service ARN (service/<cluster>/<service>): only this cluster's services.
                resources=[svc.service.service_arn for svc in services],
                detail={"eventName": [DEPLOYMENT_FAILED]},
            ),
        )
        self.deployment_failed_rule.add_target(
            targets.SnsTopic(
                self.topic,
                message=events.RuleTargetInput.from_text(
                    f"ECS deployment failed and was rolled back: {events.EventField.from_path('$.resources[0]')} "
                    f"({events.EventField.from_path('$.detail.deploymentId')}): "
                    f"{events.EventField.from_path('$.detail.reason')}"
                ),
            )
        )

    def _dashboard(
        self, config: EnvironmentConfig, data: DataStack, compute: ComputeStack, m: dict[str, cloudwatch.IMetric]
    ) -> None:
        services = services_of(compute)
        # The overview graphs compare inventory's database with billing's first one; each shard has its row below.
        databases = {"inventory": data.inventory_db.instance, "billing": data.billing_db.instance}
        queue, dlq = BILLING_QUEUE.name, BILLING_QUEUE.dead_letter_queue
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{config.prefix}-overview")
        self.dashboard = dashboard
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
                title="RDS freeable memory (bytes)",
                left=[m[f"{label}DbMemory"].with_(label=label.lower()) for label in ("Inventory", "Billing")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Inventory 5xx rate (%) / p99 (ms), from its access log",
                left=[m["inventory_error_rate"]],
                right=[m["inventory_latency_p99"]],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Requests per service (access logs)",
                left=[m[f"{name}_requests"].with_(label=name) for name in services if f"{name}_requests" in m],
                width=8,
            ),
        )
        self._billing_shard_rows(config, data, dashboard, m)
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Broker memory (% of watermark)", left=[m["broker_memory_percent"]], width=8),
            cloudwatch.GraphWidget(title="Broker free disk / limit", left=[m["broker_disk_headroom"]], width=8),
            cloudwatch.GraphWidget(title="Broker CPU (%)", left=[m["broker_cpu"]], width=8),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title=f"{queue} depth / consumers", left=[m["queue_depth"]], right=[m["queue_consumers"]], width=12
            ),
            cloudwatch.GraphWidget(
                title=f"{dlq} depth / consumers", left=[m["dlq_depth"]], right=[m["dlq_consumers"]], width=12
            ),
        )
        express, express_dlq = EXPRESS_QUEUE.name, EXPRESS_QUEUE.dead_letter_queue
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title=f"{express} depth / consumers",
                left=[m["express_depth"], m["express_dlq_depth"].with_(label=f"{express_dlq} depth")],
                right=[m["express_consumers"]],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Oldest express order received (s, from billing's log)",
                left=[m["express_order_age"]],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(value=config.express_age_alarm_seconds, label="alarm")
                ],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Orders / revenue per minute (billing leader's aggregates)",
                left=[m["orders_per_minute"].with_(label="orders")],
                right=[m["revenue_per_minute"].with_(label="revenue")],
                width=24,
            ),
        )

    @staticmethod
    def _billing_shard_rows(
        config: EnvironmentConfig, data: DataStack, dashboard: cloudwatch.Dashboard, m: dict[str, cloudwatch.IMetric]
    ) -> None:
        """One row per billing shard: its instance's CPU, connections, free storage and freeable memory, each with
        its alarm's threshold, so a hot or failing shard shows up next to the others."""
        specs = {spec.id: spec for spec in alarm_specs(config)}
        graphs = (("CPU (%)", "DbCpu"), ("connections", "DbConnections"), ("free storage (bytes)", "DbStorage"),
                  ("freeable memory (bytes)", "DbMemory"))  # fmt: skip
        for shard in range(len(data.billing_shards)):
            label = billing_shard_label(shard)
            dashboard.add_widgets(
                *(
                    cloudwatch.GraphWidget(
                        title=f"Billing shard {shard}: {what}",
                        left=[m[f"{label}{metric}"]],
                        left_annotations=[
                            cloudwatch.HorizontalAnnotation(value=specs[f"{label}{metric}"].threshold, label="alarm")
                        ],
                        width=6,
                    )
                    for what, metric in graphs
                )
            )

    def _order_aggregates(self, compute: ComputeStack) -> dict[str, cloudwatch.IMetric]:
        """Orders and revenue per minute, from the one JSON line billing's leader logs per closed minute
        (``billing.aggregates``; exactly one task leads, so each minute is counted once)."""
        metrics: dict[str, cloudwatch.IMetric] = {}
        line = '$.message = "order minute aggregated"'
        for key, metric_name, field in (
            ("orders_per_minute", "BillingOrdersPerMinute", "$.orders"),
            ("revenue_per_minute", "BillingRevenuePerMinute", "$.revenue"),
        ):
            metric_filter = log_metric_filter(
                self, f"{metric_name}Filter", compute.billing.log_group, metric_name, line, field
            )
            metrics[key] = metric_filter.metric(statistic="Sum", period=Duration.minutes(1))
        return metrics

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
