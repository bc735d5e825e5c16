"""DataStack: one RDS PostgreSQL instance per service and an Amazon MQ for RabbitMQ broker."""

from __future__ import annotations

import json

from aws_cdk import Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_amazonmq as amazonmq
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from stacks.config import EnvironmentConfig

POSTGRES_VERSION = rds.PostgresEngineVersion.VER_17_6
"""Pinned minor version: upgrades are a reviewed change, not a surprise during a maintenance window."""
RABBITMQ_VERSION = "3.13"
"""Amazon MQ RabbitMQ 3.13 is versioned by major.minor; patch upgrades are applied automatically."""
AMQPS_PORT = 5671
BILLING_QUEUE = "billing_queue"
BILLING_DEAD_LETTER_QUEUE = f"{BILLING_QUEUE}.dlq"


def queue_metric(broker_name: str, queue: str, metric_name: str, statistic: str) -> cloudwatch.Metric:
    """An Amazon MQ for RabbitMQ per-queue metric (namespace AWS/AmazonMQ) of the default virtual host."""
    return cloudwatch.Metric(
        namespace="AWS/AmazonMQ",
        metric_name=metric_name,
        dimensions_map={"Broker": broker_name, "VirtualHost": "/", "Queue": queue},
        statistic=statistic,
        period=Duration.minutes(1),
    )


class PostgresDatabase(Construct):
    """A PostgreSQL instance for one service: isolated subnets, encrypted, TLS-only, rotated credentials."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        database_name: str,
        client_security_group: ec2.ISecurityGroup,
    ) -> None:
        super().__init__(scope, construct_id)
        self.database_name = database_name

        parameters = rds.ParameterGroup(
            self,
            "Parameters",
            engine=rds.DatabaseInstanceEngine.postgres(version=POSTGRES_VERSION),
            # Reject every non-TLS connection; the services connect with sslmode=require.
            parameters={"rds.force_ssl": "1"},
        )
        self.instance = rds.DatabaseInstance(
            self,
            "Instance",
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
        )
        assert self.instance.secret is not None  # from_generated_secret always creates one
        self.secret = self.instance.secret
        # Single-user rotation keeps one login; running tasks keep their open connections, new tasks read
        # the new password (see docs/parts/infrastructure.md for the restart note).
        self.instance.add_rotation_single_user(automatically_after=Duration.days(config.secret_rotation_days))
        # Only this service's tasks (and the rotation function added above) may open 5432.
        self.instance.connections.allow_default_port_from(client_security_group, "service tasks")


class DataStack(Stack):
    """Databases of inventory and billing, and the RabbitMQ broker shared by gateway and billing."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        vpc: ec2.IVpc,
        inventory_security_group: ec2.ISecurityGroup,
        billing_security_group: ec2.ISecurityGroup,
        gateway_security_group: ec2.ISecurityGroup,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)

        self.inventory_db = PostgresDatabase(
            self, "InventoryDb", config=config, vpc=vpc, database_name="movies_db",
            client_security_group=inventory_security_group,
        )
        self.billing_db = PostgresDatabase(
            self, "BillingDb", config=config, vpc=vpc, database_name="billing_db",
            client_security_group=billing_security_group,
        )

        # --- Amazon MQ for RabbitMQ --------------------------------------------------------------------
        self.broker_secret = secretsmanager.Secret(
            self,
            "BrokerCredentials",
            description="RabbitMQ user of the movies services (Amazon MQ)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({"username": "movies"}),
                generate_string_key="password",
                # Amazon MQ forbids , : = and spaces; no punctuation at all keeps the AMQP URL-safe too.
                exclude_punctuation=True,
                password_length=32,
            ),
        )
        self.broker_security_group = ec2.SecurityGroup(
            self,
            "BrokerSecurityGroup",
            vpc=vpc,
            description="Amazon MQ RabbitMQ broker: amqps from gateway and billing tasks only",
            allow_all_outbound=False,
        )
        for client in (gateway_security_group, billing_security_group):
            self.broker_security_group.connections.allow_from(client, ec2.Port.tcp(AMQPS_PORT), "amqps")

        private_subnets = vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnet_ids
        self.broker_name = f"{config.prefix}-broker"
        self.broker = amazonmq.CfnBroker(
            self,
            "Broker",
            broker_name=self.broker_name,
            engine_type="RABBITMQ",
            engine_version=RABBITMQ_VERSION,
            auto_minor_version_upgrade=True,
            host_instance_type=config.mq_instance_type,
            deployment_mode=config.mq_deployment_mode,
            publicly_accessible=False,
            subnet_ids=private_subnets if config.mq_deployment_mode != "SINGLE_INSTANCE" else private_subnets[:1],
            security_groups=[self.broker_security_group.security_group_id],
            # Dynamic references: CloudFormation resolves them at deploy time; the template holds no secret.
            users=[
                amazonmq.CfnBroker.UserProperty(
                    username=self.broker_secret.secret_value_from_json("username").unsafe_unwrap(),
                    password=self.broker_secret.secret_value_from_json("password").unsafe_unwrap(),
                )
            ],
            logs=amazonmq.CfnBroker.LogListProperty(general=True),
            maintenance_window_start_time=amazonmq.CfnBroker.MaintenanceWindowProperty(
                day_of_week="SUNDAY", time_of_day="03:00", time_zone="UTC"
            ),
        )
        # amqps://b-<id>.mq.<region>.amazonaws.com:5671 (no credentials in it).
        self.rabbitmq_url = Fn.select(0, self.broker.attr_amqp_endpoints)
