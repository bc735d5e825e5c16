"""InvoicerStack: the saga's invoicer, a Lambda function fed by Amazon MQ's event source on ``invoicer.saga``.

The function (``functions/invoices``, handler ``invoices.handler.handler``) renders the invoice of each
``order.confirmed``, stores it under ``invoices/`` of the saga's bucket (data stack) and publishes
``invoice.ready`` to the broker with confirms (docs/patterns/claim-check.md). It runs in the VPC's private
subnets with a security group of its own that may reach the broker's amqps port and HTTPS (S3 through the
gateway endpoint, Secrets Manager); it reads the broker login from the broker's secret, as the event source
does.

The event source mapping delivers one message per invocation (batch size 1) and acknowledges it only when the
function succeeds: a failure (S3 or the broker away) is redelivered, up to the queue's delivery limit, after
which the broker dead-letters it; a malformed message the function dead-letters itself, with the reason.
Nothing of this can run here: the local system runs the same handler under ``local_system/invoicer_runner.py``.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from contract import invoices, saga
from stacks.components.lambda_bundle import REPO_ROOT, depend_only_on_role_policy, python_lambda_code
from stacks.config import EnvironmentConfig
from stacks.data import AMQPS_PORT, DataStack

REQUIREMENTS = REPO_ROOT / "functions" / "invoices" / "requirements.txt"
#: The asset: the package ``invoices`` (functions/invoices) and ``contract``, which it imports.
SOURCES = {"invoices": "functions/invoices", "contract": "contract"}
HANDLER = "invoices.handler.handler"
#: Rendering one page and two round trips (S3, broker confirm) take well under a second; the margin covers a
#: cold start (fpdf2 and Pillow imported) and a reconnect to the broker.
TIMEOUT = Duration.seconds(60)
MEMORY_MIB = 512
#: One message per invocation: a failure redelivers that message alone.
BATCH_SIZE = 1
#: The network interfaces of the function in the private subnets and of the Amazon MQ event source in the
#: broker's subnets (what AWSLambdaVPCAccessExecutionRole and the MQ event source documentation list, without
#: the managed policy's log permissions); none of these EC2 actions supports resource-level permissions.
NETWORK_INTERFACE_ACTIONS = [
    "ec2:AssignPrivateIpAddresses",
    "ec2:CreateNetworkInterface",
    "ec2:DeleteNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeSubnets",
    "ec2:DescribeVpcs",
    "ec2:UnassignPrivateIpAddresses",
]


class InvoicerStack(Stack):
    """The invoicer function, its role, security group, log group and Amazon MQ event source."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, vpc: ec2.IVpc, data: DataStack,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        bucket = config.saga_bucket_name(self.account, self.region)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="Invoicer Lambda: amqps to the broker, HTTPS to S3 and Secrets Manager",
            allow_all_outbound=False,
        )
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "S3 and Secrets Manager APIs")
        self.security_group.add_egress_rule(data.broker_security_group, ec2.Port.tcp(AMQPS_PORT), "amqps to the broker")
        # The broker's side of it lives here, not in the data stack: the data stack must not depend on this one.
        ec2.CfnSecurityGroupIngress(
            self,
            "BrokerIngress",
            group_id=data.broker_security_group.security_group_id,
            source_security_group_id=self.security_group.security_group_id,
            ip_protocol="tcp",
            from_port=AMQPS_PORT,
            to_port=AMQPS_PORT,
            description="amqps from the invoicer",
        )

        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="invoicer: stores invoices/, reads the broker secret, polls invoicer.saga",
        )
        self.log_group = logs.LogGroup(
            self, "Logs", retention=config.log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        self.log_group.grant_write(self.role)
        # GetObject: HeadObject of an invoice stored already (a replay); PutObject: the invoice. Nothing else.
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject"],
                resources=[f"arn:{self.partition}:s3:::{bucket}/{invoices.KEY_PREFIX}*"],
            )
        )
        data.broker_secret.grant_read(self.role)
        self.role.add_to_policy(iam.PolicyStatement(actions=["mq:DescribeBroker"], resources=[data.broker.attr_arn]))
        self.role.add_to_policy(iam.PolicyStatement(actions=NETWORK_INTERFACE_ACTIONS, resources=["*"]))

        self.function = lambda_.Function(
            self,
            "Function",
            function_name=config.invoicer_function_name,
            description="Invoicer: order.confirmed -> invoice PDF in S3 -> invoice.ready (claim check)",
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.ARM_64,
            handler=HANDLER,
            code=python_lambda_code(REQUIREMENTS, SOURCES, python_version="3.12"),
            role=self.role,
            log_group=self.log_group,
            timeout=TIMEOUT,
            memory_size=MEMORY_MIB,
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self.security_group],
            environment={
                invoices.BUCKET_SETTING: bucket,
                invoices.BROKER_URL_SETTING: data.rabbitmq_url,
                invoices.BROKER_SECRET_SETTING: data.broker_secret.secret_arn,
            },
        )
        # The L1 resource: the L2 mapping has no RabbitMQ queue setting.
        self.event_source = lambda_.CfnEventSourceMapping(
            self,
            "InvoicerSaga",
            function_name=self.function.function_name,
            event_source_arn=data.broker.attr_arn,
            queues=[saga.INVOICER_EVENTS.name],
            batch_size=BATCH_SIZE,
            source_access_configurations=[
                lambda_.CfnEventSourceMapping.SourceAccessConfigurationProperty(
                    type="BASIC_AUTH", uri=data.broker_secret.secret_arn
                ),
                lambda_.CfnEventSourceMapping.SourceAccessConfigurationProperty(type="VIRTUAL_HOST", uri="/"),
            ],
        )
        # Created only once the role may describe the broker and read the secret (Lambda checks at creation).
        self.event_source.add_dependency(self.role.node.find_child("DefaultPolicy").node.default_child)
        depend_only_on_role_policy(self.function)
