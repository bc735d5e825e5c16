"""GeodeStack: one API name for the whole environment, answered by the nearest healthy stamp.

Route 53 latency-based records: ``<api_domain_name>`` has one CNAME per stamp (``SetIdentifier`` = the stamp,
``Region`` = its region) to that stamp's own ALB name, each guarded by a Route 53 health check of the stamp's
public ``/health`` over HTTPS. Route 53 answers a resolver with the lowest-latency stamp whose check passes; when
a stamp's check fails, its record is left out and the users it served reach the next nearest stamp.

The hosted zone is imported by the id in the config, never created. The stack lives in us-east-1: Route 53 is
global, but its health checks publish their CloudWatch metrics only there, so the alarms on them (and their
topic and the geode's dashboard) can only work there. Nothing here references a stamp's stacks: every name
comes from the config, so the geode deploys after the stamps without cross-region references.
(docs/stamps-and-geode.md)
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Environment, Stack, Stage, Tags
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_route53 as route53
from constructs import Construct

from contract import web
from stacks.config import EnvironmentConfig
from stacks.monitoring import alarm_topic
from stacks.stamps import stamp_configs

GEODE_STACK_ID = "Geode"


def geode_stack_name(config: EnvironmentConfig) -> str:
    """``Movies-<env>-Geode``: one per environment."""
    return f"Movies-{config.name}-{GEODE_STACK_ID}"


def health_check_metric(
    health_check: route53.IHealthCheck,
    label: str | None = None,
    metric_name: str = "HealthCheckStatus",
    statistic: str = "Minimum",
) -> cloudwatch.Metric:
    """A Route 53 health check's metric per minute; by default ``HealthCheckStatus``: 1 while Route 53's checkers
    see the stamp healthy, 0 when not (minimum over the minute)."""
    return cloudwatch.Metric(
        namespace="AWS/Route53",
        metric_name=metric_name,
        dimensions_map={"HealthCheckId": health_check.health_check_id},
        statistic=statistic,
        period=Duration.minutes(1),
        label=label,
    )


class GeodeStack(Stack):
    """Latency records and health checks of every stamp, their alarms, topic and dashboard."""

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)
        geode = config.geode
        assert geode and config.hosted_zone_id and config.hosted_zone_name, "the geode needs a hosted zone"
        zone = route53.HostedZone.from_hosted_zone_attributes(
            self, "Zone", hosted_zone_id=config.hosted_zone_id, zone_name=config.hosted_zone_name
        )
        self.topic = alarm_topic(self, config)
        action = cloudwatch_actions.SnsAction(self.topic)
        self.health_checks: dict[str, route53.HealthCheck] = {}
        self.records: dict[str, route53.CnameRecord] = {}
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        for stamp_config in stamp_configs(config):
            stamp = stamp_config.current_stamp
            label = stamp.name.capitalize()
            check = route53.HealthCheck(
                self,
                f"{label}Health",
                type=route53.HealthCheckType.HTTPS,
                fqdn=stamp_config.domain_name,
                port=443,
                resource_path=web.HEALTH_PATH,
                enable_sni=True,
                request_interval=Duration.seconds(geode.health_check_interval_seconds),
                failure_threshold=geode.health_check_failure_threshold,
            )
            Tags.of(check).add("Name", f"{stamp_config.prefix} /health")
            self.health_checks[stamp.name] = check
            self.records[stamp.name] = route53.CnameRecord(
                self,
                f"{label}Latency",
                zone=zone,
                record_name=geode.api_domain_name,
                domain_name=stamp_config.domain_name,
                region=stamp.region,
                set_identifier=stamp.name,
                health_check=check,
                ttl=Duration.seconds(geode.record_ttl_seconds),
                comment=f"stamp {stamp.name} ({stamp.region}, {stamp.share_percent} % of users)",
            )
            alarm = cloudwatch.Alarm(
                self,
                f"{label}Unhealthy",
                metric=health_check_metric(check),
                threshold=1,
                comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                evaluation_periods=2,
                alarm_description=(
                    f"Stamp {stamp.name} ({stamp.region}): Route 53's checkers see its public /health failing, so "
                    f"{geode.api_domain_name} no longer sends users there (docs/operations.md, 'Stamp unhealthy')."
                ),
                # No data means Route 53 stopped reporting the check: as bad as a failure, for an outside view.
                treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
            )
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
            self.alarms[stamp.name] = alarm

        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{config.prefix}-geode")
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title=f"Stamps healthy, seen from outside ({geode.api_domain_name}; 1 = healthy)",
                left=[health_check_metric(check, name) for name, check in self.health_checks.items()],
                left_y_axis=cloudwatch.YAxisProps(min=0, max=1),
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Share of Route 53 checkers seeing each stamp healthy (%)",
                left=[
                    health_check_metric(check, name, "HealthCheckPercentageHealthy", "Average")
                    for name, check in self.health_checks.items()
                ],
                width=12,
            ),
        )
        self.api_url_output = CfnOutput(self, "ApiUrl", value=f"https://{geode.api_domain_name}")


class GeodeStage(Stage):
    """The geode stack of one environment, as a stage of its own: the pipeline deploys it after every stamp."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, account: str | None = None
    ) -> None:
        assert config.geode
        super().__init__(scope, construct_id, env=Environment(account=account, region=config.geode.region))
        self.config = config
        self.geode = GeodeStack(
            self,
            GEODE_STACK_ID,
            config=config,
            stack_name=geode_stack_name(config),
            description=f"movies {config.name}: one API name, latency-routed to the healthy stamps (Route 53)",
            termination_protection=config.retain_data_on_delete,
        )
        for key, value in config.tags.items():
            Tags.of(self).add(key, value)

    @property
    def stacks(self) -> list[Stack]:
        """The stage's one stack."""
        return [self.geode]
