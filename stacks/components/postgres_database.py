"""PostgresDatabase: an RDS PostgreSQL instance for one service, secure by default."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_rds as rds
from constructs import Construct

from stacks.config import EnvironmentConfig

POSTGRES_VERSION = rds.PostgresEngineVersion.VER_17_6
"""Pinned minor version: upgrades are a reviewed change, not a surprise during a maintenance window."""


class PostgresDatabase(Construct):
    """A PostgreSQL instance for one service: isolated subnets, encrypted, TLS-only, rotated credentials.

    Credentials are generated into Secrets Manager (``secret``: JSON with ``username``/``password``) and
    rotated; only ``client_security_group`` (and the rotation function) may connect. PostgreSQL logs go to a
    log group with the configured retention.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        service_name: str,
        database_name: str,
        client_security_group: ec2.ISecurityGroup,
    ) -> None:
        super().__init__(scope, construct_id)
        self.database_name = database_name
        # A fixed identifier lets the stack own the PostgreSQL log group (with retention) before RDS creates
        # it. Trade-off: a change that replaces the instance needs a new identifier.
        identifier = f"{config.prefix}-{service_name}"
        self.log_group = logs.LogGroup(
            self,
            "PostgresLogs",
            log_group_name=f"/aws/rds/instance/{identifier}/postgresql",
            retention=config.log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )

        parameters = rds.ParameterGroup(
            self,
            "Parameters",
            engine=rds.DatabaseInstanceEngine.postgres(version=POSTGRES_VERSION),
            # Reject every non-TLS connection; the services connect with sslmode=require.
            # Log slow statements (durations only above 1 s), never every statement: those can hold personal data.
            parameters={"rds.force_ssl": "1", "log_min_duration_statement": "1000"},
        )
        self.instance = rds.DatabaseInstance(
            self,
            "Instance",
            instance_identifier=identifier,
            engine=rds.DatabaseInstanceEngine.postgres(version=POSTGRES_VERSION),
            instance_type=ec2.InstanceType(config.db_instance_type),
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            multi_az=config.db_multi_az,
            database_name=database_name,
            credentials=rds.Credentials.from_generated_secret("app_admin"),
            parameter_group=parameters,
            storage_encrypted=True,
            allocated_storage=config.db_allocated_storage_gib,
            max_allocated_storage=config.db_max_allocated_storage_gib,
            storage_type=rds.StorageType.GP3,
            backup_retention=Duration.days(config.db_backup_retention_days),
            deletion_protection=config.db_deletion_protection,
            removal_policy=RemovalPolicy.SNAPSHOT if config.retain_data_on_delete else RemovalPolicy.DESTROY,
            delete_automated_backups=not config.retain_data_on_delete,
            auto_minor_version_upgrade=False,
            publicly_accessible=False,
            copy_tags_to_snapshot=True,
            cloudwatch_logs_exports=["postgresql"],
            # prod only (config): PI's 7-day retention is free; Enhanced Monitoring writes OS metrics to
            # CloudWatch Logs (RDSOSMetrics), billed as log ingestion. None keeps the property out when off.
            enable_performance_insights=config.db_performance_insights or None,
            performance_insight_retention=(
                rds.PerformanceInsightRetention.DEFAULT if config.db_performance_insights else None
            ),
            monitoring_interval=(
                Duration.seconds(config.db_enhanced_monitoring_seconds)
                if config.db_enhanced_monitoring_seconds
                else None
            ),
        )
        self.instance.node.add_dependency(self.log_group)
        assert self.instance.secret is not None  # from_generated_secret always creates one
        self.secret = self.instance.secret
        # Single-user rotation keeps one login; open connections survive it, and the services re-read the
        # secret (AWSCURRENT, then AWSPENDING) when a new connection is refused (docs/operations.md,
        # "Credential rotation").
        self.instance.add_rotation_single_user(
            automatically_after=Duration.days(config.secret_rotation_days),
            # The rotation function calls the Secrets Manager API: it needs the NAT gateway or the VPC
            # endpoint, which the isolated database subnets do not have.
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
        )
        # Only this service's tasks (and the rotation function added above) may open 5432.
        self.instance.connections.allow_default_port_from(client_security_group, "service tasks")
