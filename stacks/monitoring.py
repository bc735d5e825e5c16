"""MonitoringStack: dashboard, alarms to an SNS topic with e-mail, and the monthly AWS Budget."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from stacks.components.postgres_database import PostgresDatabase
from stacks.compute import ComputeStack
from stacks.config import EnvironmentConfig
from stacks.data import BILLING_DEAD_LETTER_QUEUE, BILLING_QUEUE, DataStack, queue_metric

FIVE_MINUTES = Duration.minutes(5)


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

        alb = compute.alb
        target_group = compute.target_group
        requests = alb.metrics.request_count(period=FIVE_MINUTES)
        elb_5xx = alb.metrics.custom("HTTPCode_ELB_5XX_Count", statistic="Sum", period=FIVE_MINUTES)
        target_5xx = alb.metrics.custom("HTTPCode_Target_5XX_Count", statistic="Sum", period=FIVE_MINUTES)
        target_4xx = alb.metrics.custom("HTTPCode_Target_4XX_Count", statistic="Sum", period=FIVE_MINUTES)
        elb_4xx = alb.metrics.custom("HTTPCode_ELB_4XX_Count", statistic="Sum", period=FIVE_MINUTES)
        latency_p50 = alb.metrics.target_response_time(statistic="p50", period=FIVE_MINUTES)
        latency_p99 = alb.metrics.target_response_time(statistic="p99", period=FIVE_MINUTES)
        error_rate = cloudwatch.MathExpression(
            expression="100 * (FILL(e5, 0) + FILL(t5, 0)) / MAX([FILL(r, 1), 1])",
            using_metrics={"e5": elb_5xx, "t5": target_5xx, "r": requests},
            label="5xx rate (%)",
            period=FIVE_MINUTES,
        )

        queue_depth = queue_metric(data.broker_name, BILLING_QUEUE, "MessageCount", "Maximum")
        queue_consumers = queue_metric(data.broker_name, BILLING_QUEUE, "ConsumerCount", "Minimum")
        dlq_depth = queue_metric(data.broker_name, BILLING_DEAD_LETTER_QUEUE, "MessageCount", "Maximum")
        dlq_consumers = queue_metric(data.broker_name, BILLING_DEAD_LETTER_QUEUE, "ConsumerCount", "Minimum")

        services = {"gateway": compute.gateway, "inventory": compute.inventory, "billing": compute.billing}
        running = {
            name: cloudwatch.Metric(
                namespace="ECS/ContainerInsights",
                metric_name="RunningTaskCount",
                dimensions_map={
                    "ClusterName": compute.cluster.cluster_name,
                    "ServiceName": svc.service.service_name,
                },
                statistic="Minimum",
                period=Duration.minutes(1),
            )
            for name, svc in services.items()
        }

        def alarm(construct_id: str, **props) -> cloudwatch.Alarm:
            created = cloudwatch.Alarm(self, construct_id, **props)
            created.add_alarm_action(action)
            created.add_ok_action(action)
            return created

        self.alarms = {
            "Alb5xxRate": alarm(
                "Alb5xxRate",
                metric=error_rate,
                threshold=5,
                evaluation_periods=3,
                datapoints_to_alarm=2,
                alarm_description="More than 5 % of ALB requests answered 5xx",
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            "AlbLatencyP99": alarm(
                "AlbLatencyP99",
                metric=latency_p99,
                threshold=config.latency_p99_threshold_seconds,
                evaluation_periods=3,
                datapoints_to_alarm=2,
                alarm_description="p99 gateway response time above the threshold",
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            "UnhealthyTargets": alarm(
                "UnhealthyTargets",
                metric=target_group.metrics.unhealthy_host_count(statistic="Maximum", period=Duration.minutes(1)),
                threshold=0,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=3,
                alarm_description="At least one gateway target is unhealthy",
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            "BillingNotRunning": alarm(
                "BillingNotRunning",
                metric=running["billing"],
                threshold=1,
                comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                evaluation_periods=3,
                alarm_description="No billing task is running: orders pile up in billing_queue",
                treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
            ),
            "QueueBacklog": alarm(
                "QueueBacklog",
                metric=queue_depth,
                threshold=config.queue_backlog_threshold,
                evaluation_periods=15,
                datapoints_to_alarm=15,
                alarm_description="billing_queue backlog above the threshold for 15 minutes",
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
            "DeadLetters": alarm(
                "DeadLetters",
                metric=dlq_depth,
                threshold=0,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                alarm_description="A message reached billing_queue.dlq: an order could not be processed",
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            ),
        }
        databases = {"Inventory": data.inventory_db, "Billing": data.billing_db}
        for label, db in databases.items():
            self.alarms[f"{label}DbCpu"] = alarm(
                f"{label}DbCpu",
                metric=db.instance.metric_cpu_utilization(period=FIVE_MINUTES),
                threshold=80,
                evaluation_periods=3,
                alarm_description=f"{label} database CPU above 80 %",
            )
            self.alarms[f"{label}DbStorage"] = alarm(
                f"{label}DbStorage",
                metric=db.instance.metric_free_storage_space(period=FIVE_MINUTES),
                threshold=2 * 1024**3,
                comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                evaluation_periods=1,
                alarm_description=f"{label} database has less than 2 GiB free storage",
            )

        self._dashboard(
            config,
            databases,
            services,
            running,
            requests,
            target_4xx,
            elb_4xx,
            elb_5xx,
            target_5xx,
            latency_p50,
            latency_p99,
            (queue_depth, queue_consumers, dlq_depth, dlq_consumers),
        )
        self._budget(config)

    def _dashboard(
        self,
        config,
        databases: dict[str, PostgresDatabase],
        services,
        running,
        requests,
        target_4xx,
        elb_4xx,
        elb_5xx,
        target_5xx,
        latency_p50,
        latency_p99,
        queue_metrics,
    ) -> None:
        queue_depth, queue_consumers, dlq_depth, dlq_consumers = queue_metrics
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{config.prefix}-overview")
        dashboard.add_widgets(
            cloudwatch.GraphWidget(title="ALB requests", left=[requests], width=8),
            cloudwatch.GraphWidget(
                title="ALB 4xx / 5xx", left=[target_4xx, elb_4xx], right=[target_5xx, elb_5xx], width=8
            ),
            cloudwatch.GraphWidget(title="Gateway latency p50 / p99", left=[latency_p50, latency_p99], width=8),
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
                title="Running tasks",
                left=[metric.with_(label=name) for name, metric in running.items()],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="RDS CPU (%)",
                left=[db.instance.metric_cpu_utilization(label=n.lower()) for n, db in databases.items()],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="RDS connections",
                left=[db.instance.metric_database_connections(label=n.lower()) for n, db in databases.items()],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="RDS free storage (bytes)",
                left=[db.instance.metric_free_storage_space(label=n.lower()) for n, db in databases.items()],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="billing_queue depth / consumers", left=[queue_depth], right=[queue_consumers], width=12
            ),
            cloudwatch.GraphWidget(
                title="billing_queue.dlq depth / consumers", left=[dlq_depth], right=[dlq_consumers], width=12
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
