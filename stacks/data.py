"""DataStack: one RDS PostgreSQL instance per service (billing: one per shard), an Amazon MQ for RabbitMQ broker
(its user rotated by our own Lambda), the gateway's rate-limit store (ElastiCache Serverless), the AWS Backup plan
of the databases, and the saga's bucket of invoices and claim checks."""

from __future__ import annotations

import json

from aws_cdk import Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_amazonmq as amazonmq
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from contract import claim_check, invoices, services
from stacks.components.broker_rotation import BrokerRotation
from stacks.components.database_backup import DatabaseBackup
from stacks.components.postgres_database import PostgresDatabase
from stacks.components.rate_limit_store import RateLimitStore
from stacks.config import EnvironmentConfig

AMQPS_PORT = 5671
#: The saga's bucket: issued invoices move to cheaper storage classes that still serve a presigned GET at once
#: (Standard-IA, then Glacier Instant Retrieval); claim checks are read within seconds of being written and
#: expire after two weeks (a dead letter's body stays readable while someone looks at it); a replaced or deleted
#: object's old version is kept for a month.
INVOICES_TO_INFREQUENT_ACCESS = Duration.days(30)
INVOICES_TO_GLACIER_INSTANT = Duration.days(180)
CLAIM_CHECK_EXPIRY = Duration.days(14)
NONCURRENT_VERSION_EXPIRY = Duration.days(30)


def billing_shard_id(shard: int) -> str:
    """Construct id of billing shard ``shard`` (its logical ids derive from it): ``BillingDb`` for shard 0 (the
    original database, never renamed), ``BillingShard<k>`` for k >= 1."""
    return "BillingDb" if shard == 0 else f"BillingShard{shard}"


def queue_metric(broker_name: str, queue: str, metric_name: str, statistic: str) -> cloudwatch.Metric:
    """An Amazon MQ for RabbitMQ per-queue metric (namespace AWS/AmazonMQ) of the default virtual host.

    ``queue`` is a queue name from ``contract.messaging`` (``BILLING_QUEUE.name``, ``.dead_letter_queue``).
    """
    return cloudwatch.Metric(
        namespace="AWS/AmazonMQ",
        metric_name=metric_name,
        dimensions_map={"Broker": broker_name, "VirtualHost": "/", "Queue": queue},
        statistic=statistic,
        period=Duration.minutes(1),
    )


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
            self,
            "InventoryDb",
            config=config,
            vpc=vpc,
            service_name=services.INVENTORY.name,
            database_name=services.INVENTORY.database,
            client_security_group=inventory_security_group,
        )
        self.billing_db = PostgresDatabase(
            self,
            billing_shard_id(0),
            config=config,
            vpc=vpc,
            service_name=services.BILLING.name,
            database_name=services.BILLING.database,
            client_security_group=billing_security_group,
        )
        # Sharded billing (contract.shards): shard 0 IS billing_db above, untouched; shard k >= 1 is its own
        # instance, built like it and reachable from the same tasks (billing and its express consumer share
        # billing_security_group). Construct ids by shard number, so adding a shard never renames another.
        self.billing_shards: tuple[PostgresDatabase, ...] = (
            self.billing_db,
            *(
                PostgresDatabase(
                    self,
                    billing_shard_id(shard),
                    config=config,
                    vpc=vpc,
                    service_name=f"{services.BILLING.name}-shard-{shard}",
                    database_name=services.BILLING.database,
                    client_security_group=billing_security_group,
                )
                for shard in range(1, config.billing_shards)
            ),
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
        # The key the gateway signs order ids with (ORDER_ID_KEY, docs/patterns/asynchronous-request-reply.md):
        # 64 hex digits, generated here, injected by ECS into the gateway's container only; it never appears in a
        # template or a log.
        self.order_id_key = secretsmanager.Secret(
            self,
            "OrderIdKey",
            description="Key the gateway signs order ids with (HMAC-SHA256); gateway only",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64,
                exclude_uppercase=True,
                exclude_punctuation=True,
                include_space=False,
                exclude_characters="ghijklmnopqrstuvwxyz",
            ),
        )
        self.broker_security_group = ec2.SecurityGroup(
            self,
            "BrokerSecurityGroup",
            vpc=vpc,
            description="Amazon MQ RabbitMQ broker: amqps from gateway and billing tasks only",
            allow_all_outbound=False,
        )
        # Inventory takes part in the saga (inventory.saga, its outbox): it publishes and consumes too.
        for client in (gateway_security_group, billing_security_group, inventory_security_group):
            self.broker_security_group.connections.allow_from(client, ec2.Port.tcp(AMQPS_PORT), "amqps")
        # Lambda's Amazon MQ event source (the invoicer's) polls from network interfaces it creates in the
        # broker's subnets with the broker's security group: amqps to the broker within the group, and the
        # Lambda, STS and Secrets Manager APIs over HTTPS (NAT gateway or endpoints, addresses not fixed).
        self.broker_security_group.add_ingress_rule(
            self.broker_security_group, ec2.Port.tcp(AMQPS_PORT), "amqps from Lambda's event source pollers"
        )
        self.broker_security_group.add_egress_rule(
            self.broker_security_group, ec2.Port.tcp(AMQPS_PORT), "event source pollers to the broker"
        )
        self.broker_security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "event source pollers to the Lambda and Secrets Manager APIs"
        )

        private_subnets = vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnet_ids
        self.broker_name = f"{config.prefix}-broker"
        self.broker = amazonmq.CfnBroker(
            self,
            "Broker",
            broker_name=self.broker_name,
            engine_type="RABBITMQ",
            engine_version=config.mq_engine_version,
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
        self.broker_rotation = BrokerRotation(
            self,
            "BrokerRotation",
            vpc=vpc,
            broker=self.broker,
            broker_security_group=self.broker_security_group,
            secret=self.broker_secret,
            rotation_days=config.secret_rotation_days,
            log_retention=config.log_retention,
        )

        # --- the gateway's rate-limit counters (ElastiCache Serverless for Valkey) ---------------------
        self.rate_limit_store = RateLimitStore(
            self, "RateLimitStore", config=config, vpc=vpc, client_security_group=gateway_security_group
        )

        self.saga_bucket = self._saga_bucket(config)

        self.backup = DatabaseBackup(self, "Backup", config=config, instances=[db.instance for db in self.databases])

    @property
    def databases(self) -> tuple[PostgresDatabase, ...]:
        """Every PostgreSQL instance: inventory's, then the billing shards (shard 0 = billing_db) in order."""
        return (self.inventory_db, *self.billing_shards)

    def _saga_bucket(self, config: EnvironmentConfig) -> s3.Bucket:
        """The one bucket of invoices (``invoices/``: the invoicer writes, billing presigns downloads) and claim
        checks (``claim-checks/``: large saga events); private, encrypted, versioned, TLS only. Here, in the
        stateful stack: issued invoices are records that must survive any change of the stacks that use them."""
        return s3.Bucket(
            self,
            "Invoices",
            bucket_name=config.saga_bucket_name(self.account, self.region),
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(id="AbortIncompleteUploads", abort_incomplete_multipart_upload_after=Duration.days(1)),
                s3.LifecycleRule(
                    id="InvoicesToCheaperStorage",
                    prefix=invoices.KEY_PREFIX,
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=INVOICES_TO_INFREQUENT_ACCESS,
                        ),
                        s3.Transition(
                            storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                            transition_after=INVOICES_TO_GLACIER_INSTANT,
                        ),
                    ],
                ),
                s3.LifecycleRule(id="ExpireClaimChecks", prefix=claim_check.KEY_PREFIX, expiration=CLAIM_CHECK_EXPIRY),
                s3.LifecycleRule(id="ExpireOldVersions", noncurrent_version_expiration=NONCURRENT_VERSION_EXPIRY),
            ],
            removal_policy=RemovalPolicy.RETAIN if config.retain_data_on_delete else RemovalPolicy.DESTROY,
        )
