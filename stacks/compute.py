"""ComputeStack: ECS cluster, the three Fargate services, the public edge and autoscaling, wired together.

The rooms are elsewhere: one service in ``components/fargate_microservice.py``, the ALB / listeners / WAF in
``components/public_edge.py``, the scaling policies in ``components/scaling.py``. This module only decides
who talks to whom and which settings each service receives (names from ``contract``).
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_servicediscovery as servicediscovery
from constructs import Construct

from contract import claim_check, invoices, posters, services
from contract import environment as var
from contract.messaging import BILLING_QUEUE, EXPRESS_QUEUE
from contract.permissions import SCOPE_PREFIX
from contract.shards import shard_variable
from stacks.auth import AuthStack
from stacks.components import scaling
from stacks.components.fargate_microservice import FargateMicroservice
from stacks.components.logical_ids import TransparentIdsStack
from stacks.components.order_age import express_order_age
from stacks.components.postgres_database import PostgresDatabase
from stacks.components.public_edge import PublicEdge
from stacks.components.stamp_registry import StampRegistry
from stacks.components.web_front_end import WebFrontEnd
from stacks.config import EnvironmentConfig
from stacks.data import DataStack
from stacks.network import NetworkStack

#: The container of billing's express consumer: billing's image and settings, with BILLING_CONSUME=express.
EXPRESS_CONSUMER = f"{services.BILLING.name}-express"

#: Inventory's poster settings (contract.environment gains them with issue 14's inventory change; the names are
#: those of the interface until both branches meet).
POSTER_UPLOAD_BUCKET, POSTER_RESULTS_QUEUE_URL = "POSTER_UPLOAD_BUCKET", "POSTER_RESULTS_QUEUE_URL"

Settings = tuple[dict[str, str], list[secretsmanager.ISecret]]
"""Plain environment variables of a container, by name, and the secrets its task role may read."""


#: The variables each billing shard k >= 1 has of its own (contract.shards.shard_variable); the others (sslmode,
#: pool size, timeouts) are shard 0's for every shard.
SHARD_DATABASE_VARIABLES = (var.DATABASE_HOST, var.DATABASE_PORT, var.DATABASE_NAME, var.DATABASE_SECRET_ID)


def database_settings(db: PostgresDatabase, shard: int = 0) -> Settings:
    """Where a service's own database is (TLS required) and the secret it logs in with; for billing shard
    ``shard`` >= 1, the same four settings under that shard's names (``BILLING_SHARD_<k>_DATABASE_HOST``...).

    The service reads the secret itself (DATABASE_SECRET_ID) and again when a login is refused, so it
    survives rotation; an ECS-injected password would be fixed at task start.
    """
    plain = {
        var.DATABASE_HOST.name: db.instance.db_instance_endpoint_address,
        var.DATABASE_PORT.name: db.instance.db_instance_endpoint_port,
        var.DATABASE_NAME.name: db.database_name,
        var.DATABASE_SSLMODE.name: "require",
        var.DATABASE_SECRET_ID.name: db.secret.secret_arn,
    }
    if shard:
        plain = {shard_variable(shard, v.name): plain[v.name] for v in SHARD_DATABASE_VARIABLES}
    return plain, [db.secret]


def billing_database_settings(data: DataStack) -> Settings:
    """Billing's databases: how many shards (BILLING_SHARDS), shard 0 as ``DATABASE_*`` (billing_db, as before
    sharding) and each shard k >= 1 by its own variables; the secrets are exactly the shards' secrets."""
    plain, secrets = {var.BILLING_SHARDS.name: str(len(data.billing_shards))}, []
    for shard, db in enumerate(data.billing_shards):
        shard_env, shard_secrets = database_settings(db, shard)
        plain.update(shard_env)
        secrets += shard_secrets
    return plain, secrets


def broker_settings(data: DataStack) -> Settings:
    """The broker URL, the orders queues and the broker user's secret (read by the service, see above)."""
    plain = {
        var.RABBITMQ_URL.name: data.rabbitmq_url,
        var.BILLING_QUEUE.name: BILLING_QUEUE.name,
        var.BILLING_EXPRESS_QUEUE.name: EXPRESS_QUEUE.name,
        var.RABBITMQ_SECRET_ID.name: data.broker_secret.secret_arn,
    }
    return plain, [data.broker_secret]


def listed_for(service: str, settings: dict[str, str]) -> dict[str, str]:
    """``settings`` without the variables ``contract.environment`` does not list for ``service``.

    The saga's settings are handed out by the contract's list, as the local system does: a service receives
    a variable from the change that makes it read it (tests/unit/test_services_environment.py keeps the list
    and the code equal), and a container never carries a variable its service ignores."""
    names = var.names_of(service)
    return {name: value for name, value in settings.items() if name in names}


def saga_storage(stack: Stack, config: EnvironmentConfig, role: iam.IRole, *, invoices_bucket: bool) -> dict[str, str]:
    """The saga bucket's settings of a service and its role's grants: claim checks (``claim-checks/``: write the
    large events it publishes, read those it consumes) and, for billing, the invoices it presigns downloads of
    (``invoices/``, read only: a presigned GET carries its signer's permissions). The bucket (data stack) by
    the name the config computes: plain ARNs of its prefixes."""
    name = config.saga_bucket_name(stack.account, stack.region)
    prefixes = {claim_check.KEY_PREFIX: ["s3:GetObject", "s3:PutObject"]}
    plain = {var.CLAIM_CHECK_BUCKET.name: name}
    if invoices_bucket:
        prefixes[invoices.KEY_PREFIX] = ["s3:GetObject"]
        plain[var.INVOICES_BUCKET.name] = name
    for prefix, actions in prefixes.items():
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=actions, resources=[f"arn:{stack.partition}:s3:::{name}/{prefix}*"])
        )
    return plain


def rate_limit_settings(data: DataStack, config: EnvironmentConfig) -> Settings:
    """The gateway's per-caller limits and its store (TLS URL; the user's secret, read by the gateway)."""
    limits = config.rate_limit
    plain = {
        var.RATE_LIMIT_READS_PER_SECOND.name: str(limits.reads_per_second),
        var.RATE_LIMIT_WRITES_PER_SECOND.name: str(limits.writes_per_second),
        var.RATE_LIMIT_BURST.name: str(limits.burst),
        var.RATE_LIMIT_STORE_URL.name: data.rate_limit_store.url,
        var.RATE_LIMIT_STORE_SECRET_ID.name: data.rate_limit_store.secret.secret_arn,
    }
    return plain, [data.rate_limit_store.secret]


def gateway_auth_settings(auth: AuthStack, region: str) -> dict[str, str]:
    """How the gateway reaches inventory and billing and validates tokens of this environment's user pool, in
    ``region`` (the first stamp's, for every stamp; the accepted client ids are set once the web front end's
    client exists: ``ComputeStack``)."""
    return {
        # Service Connect aliases, never the public ALB: traffic stays inside the VPC.
        var.INVENTORY_URL.name: f"http://{services.INVENTORY.name}:{services.INVENTORY.port}",
        var.BILLING_URL.name: f"http://{services.BILLING.name}:{services.BILLING.port}",
        var.COGNITO_REGION.name: region,
        var.AUTH_ISSUER.name: auth.issuer,
        var.AUTH_JWKS_URL.name: auth.jwks_url,
        var.AUTH_SCOPE_PREFIX.name: SCOPE_PREFIX,
        var.AUTH_GROUP_PERMISSIONS.name: auth.group_permissions,
        # Defence in depth: the gateway validates tokens even behind the ALB's JWT check.
        var.AUTH_REQUIRED.name: "true",
    }


class ComputeStack(TransparentIdsStack):
    """Runs inventory, billing (plus its express consumer) and gateway on Fargate; only the gateway is reachable,
    through the ALB."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        network: NetworkStack,
        data: DataStack,
        auth: AuthStack,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=network.vpc,
            container_insights_v2=ecs.ContainerInsights.ENABLED,
            enable_fargate_capacity_providers=True,
            # Service Connect namespace: gateway reaches inventory as http://inventory:8080 inside the VPC.
            default_cloud_map_namespace=ecs.CloudMapNamespaceOptions(
                name=f"{config.prefix}.internal",
                type=servicediscovery.NamespaceType.HTTP,
                use_for_service_connect=True,
            ),
        )
        common = dict(
            cluster=self.cluster,
            cpu_architecture=config.cpu_architecture,
            log_retention=config.log_retention,
            trace_sampling_ratio=config.trace_sampling_ratio,
        )
        broker_env, broker_secrets = broker_settings(data)

        inventory_env, inventory_secrets = database_settings(data.inventory_db)
        # Inventory takes part in the saga: the broker's URL and login (no orders queue of its own to name).
        saga_broker_env = listed_for(services.INVENTORY.name, {
            name: broker_env[name] for name in (var.RABBITMQ_URL.name, var.RABBITMQ_SECRET_ID.name)
        })
        self.inventory = FargateMicroservice(
            self,
            "Inventory",
            service=services.INVENTORY,
            sizing=config.inventory,
            security_group=network.inventory_security_group,
            environment={**inventory_env, **saga_broker_env},
            readable_secrets=[*inventory_secrets, *broker_secrets],
            service_connect="server",
            **common,
        )
        # Billing and its express consumer both store orders: each gets every shard and reads exactly their secrets.
        billing_env, billing_secrets = billing_database_settings(data)
        self.billing = FargateMicroservice(
            self,
            "Billing",
            service=services.BILLING,
            sizing=config.billing,
            security_group=network.billing_security_group,
            environment={
                **billing_env,
                **broker_env,
                var.BILLING_MAX_ROWS_PER_SECOND.name: str(config.rate_limit.billing_max_rows_per_second),
            },
            readable_secrets=[*billing_secrets, *broker_secrets],
            use_spot=config.billing_use_spot,
            # A server for the gateway's order-status reads (GET /api/orders*), reached as http://billing:8080.
            service_connect="server",
            **common,
        )
        # The priority queue pattern: the same billing image, consuming only billing.orders.express, so express
        # capacity scales on the express queue alone (docs/patterns/priority-queue.md). Same security group:
        # it reaches the same database and broker as billing, and nothing else.
        self.billing_express = FargateMicroservice(
            self,
            "BillingExpress",
            service=services.BILLING,
            name=EXPRESS_CONSUMER,
            sizing=config.billing_express,
            security_group=network.billing_security_group,
            environment={**billing_env, **broker_env, var.BILLING_CONSUME.name: "express"},
            readable_secrets=[*billing_secrets, *broker_secrets],
            use_spot=config.billing_use_spot,
            **common,
        )
        rate_limit_env, rate_limit_secrets = rate_limit_settings(data, config)
        self.gateway = FargateMicroservice(
            self,
            "Gateway",
            service=services.GATEWAY,
            sizing=config.gateway,
            security_group=network.gateway_security_group,
            environment={**broker_env, **gateway_auth_settings(auth, auth.pool_region), **rate_limit_env},
            readable_secrets=[*broker_secrets, *rate_limit_secrets],
            injected_secrets={var.ORDER_ID_KEY.name: ecs.Secret.from_secrets_manager(data.order_id_key)},
            service_connect="client",
            health_check_grace_period=Duration.seconds(60),
            **common,
        )
        # Service Connect needs the server registered before a client deployment resolves its alias.
        self.gateway.service.node.add_dependency(self.inventory.service)
        self.gateway.service.node.add_dependency(self.billing.service)
        self.inventory.connections.allow_from(
            self.gateway.connections, ec2.Port.tcp(services.INVENTORY.port), "gateway to inventory (Service Connect)"
        )
        # Billing trusts the principal headers of /orders reads because only the gateway can reach it.
        self.billing.connections.allow_from(
            self.gateway.connections, ec2.Port.tcp(services.BILLING.port), "gateway to billing (Service Connect)"
        )

        # "Edge" sorts before "Gateway" like the edge's former top-level ids, so DependsOn lists keep their order.
        self.edge = PublicEdge(
            self,
            "Edge",
            config=config,
            vpc=network.vpc,
            security_group=network.alb_security_group,
            gateway=self.gateway,
            auth=auth,
        )
        # The web origin: CloudFront in front of the web content bucket and the ALB, and the SPA's client. Here,
        # not in a stack of its own: the client's callback names the distribution, the distribution the ALB, and
        # the gateway accepts the client (docs/aws-deployment.md, "The web edge").
        self.web = WebFrontEnd(self, "Web", config=config, edge=self.edge, auth=auth)
        self.gateway.container.add_environment(
            var.AUTH_ALLOWED_CLIENT_IDS.name,
            ",".join([*auth.allowed_client_ids, self.web.spa_client_id]),
        )
        self._poster_access(config)
        # The express consumer runs billing's saga threads too (same code), so it relays and consumes claim
        # checks; it serves no order reads, so no invoices.
        for service, spec, invoices_bucket in (
            (self.inventory, services.INVENTORY, False),
            (self.billing, services.BILLING, True),
            (self.billing_express, services.BILLING, False),
        ):
            settings = saga_storage(self, config, service.task_definition.task_role, invoices_bucket=invoices_bucket)
            for name, value in listed_for(spec.name, settings).items():
                service.container.add_environment(name, value)

        scaling.scale_on_cpu(config, self.gateway, self.inventory)
        scaling.scale_gateway_on_requests(config, self.gateway, self.target_group)
        scaling.scale_inventory_on_requests(
            config, self.inventory, cluster=self.cluster, alb=self.alb, target_group=self.target_group
        )
        scaling.scale_billing_on_queue(config, self.billing, data.broker_name)
        # Both services store express orders (billing drains them first), so both log groups feed the age.
        self.express_order_age = express_order_age(
            self, {"Billing": self.billing.log_group, "BillingExpress": self.billing_express.log_group}
        )
        scaling.scale_express_on_queue(config, self.billing_express, data.broker_name, self.express_order_age)

        # Identifiers for operators (docs/aws-deployment.md, "Verify with the AWS CLI"). The public URL of the
        # API (and of the web front end) is the distribution's: the ALB answers CloudFront only.
        self.api_url_output = CfnOutput(self, "ApiUrl", value=self.web.url)
        CfnOutput(self, "DistributionId", value=self.web.distribution.distribution_id)
        CfnOutput(self, "WebBucketName", value=self.web.bucket.bucket_name)
        CfnOutput(self, "AlbDnsName", value=self.alb.load_balancer_dns_name)
        CfnOutput(self, "ClusterName", value=self.cluster.cluster_name)
        CfnOutput(self, "GatewayTargetGroupArn", value=self.target_group.target_group_arn)
        self.registry = StampRegistry(self, "Registry", config=config, url=self.web.url)

    def _poster_access(self, config: EnvironmentConfig) -> None:
        """Inventory signs presigned POSTs for ``incoming/`` of the uploads bucket (a presigned request carries
        its signer's permissions: the task role's) and consumes the RESULTS queue, both of the poster pipeline
        stack, deployed after this one: reached by the names the config computes, not by references."""
        bucket = config.poster_uploads_bucket_name(self.account, self.region)
        results = config.poster_queue_name(posters.RESULTS.name)
        self.inventory.container.add_environment(POSTER_UPLOAD_BUCKET, bucket)
        self.inventory.container.add_environment(
            POSTER_RESULTS_QUEUE_URL, f"https://sqs.{self.region}.{self.url_suffix}/{self.account}/{results}"
        )
        role = self.inventory.task_definition.task_role
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[f"arn:{self.partition}:s3:::{bucket}/{posters.INCOMING_PREFIX}*"],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                ],
                resources=[self.format_arn(service="sqs", resource=results)],
            )
        )

    # The edge's parts, as the monitoring stack and the cdk-nag acknowledgements know them.
    @property
    def alb(self):
        """The public application load balancer."""
        return self.edge.alb

    @property
    def target_group(self):
        """The gateway's target group behind the ALB."""
        return self.edge.target_group

    @property
    def access_logs_bucket(self):
        """The bucket of the ALB access logs."""
        return self.edge.access_logs_bucket
