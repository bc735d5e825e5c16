"""BrokerRotation: the rotation Lambda and schedule of the Amazon MQ (RabbitMQ) user's secret.

Amazon MQ has no Secrets Manager integration, so the secret is rotated by our own function
(``functions/broker_rotation``): the four Secrets Manager steps, with setSecret changing the user's password
through the RabbitMQ management HTTP API, which Amazon MQ serves on 443 (the web console's endpoint).
Services re-read the secret when the broker refuses a login (docs/operations.md, "Credential rotation").
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_amazonmq as amazonmq
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

FUNCTION_DIR = Path(__file__).resolve().parents[2] / "functions" / "broker_rotation"
"""The rotation handler's folder (``handler.handler``), packaged as the Lambda's code asset."""
MANAGEMENT_PORT = 443
"""Amazon MQ for RabbitMQ serves the web console and the management HTTP API on 443."""
MANAGEMENT_URL_VARIABLE = "BROKER_MANAGEMENT_URL"


class BrokerRotation(Construct):
    """A VPC Lambda that rotates ``secret`` every ``rotation_days``, allowed to reach only the broker's 443.

    Its role may rotate exactly ``secret`` (RotationSchedule adds DescribeSecret, GetSecretValue,
    PutSecretValue and UpdateSecretVersionStage on it, and GetRandomPassword, which has no resource).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        broker: amazonmq.CfnBroker,
        broker_security_group: ec2.SecurityGroup,
        secret: secretsmanager.Secret,
        rotation_days: int,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="Broker rotation Lambda: HTTPS to the broker management API and AWS APIs only",
            allow_all_outbound=False,
        )
        # 443 to anywhere: the Secrets Manager API is reached through the NAT gateway or the VPC endpoint,
        # whose addresses are not known here; the broker itself is covered by the same rule.
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "Secrets Manager API, broker")
        broker_security_group.add_ingress_rule(
            self.security_group, ec2.Port.tcp(MANAGEMENT_PORT), "management API from the rotation Lambda"
        )
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
        # https://b-<id>.mq.<region>.amazonaws.com (the first console URL; cluster brokers have one endpoint).
        self.management_url = Fn.select(0, broker.attr_console_ur_ls)
        self.function = lambda_.Function(
            self,
            "Function",
            description="Rotates the Amazon MQ RabbitMQ user's password (Secrets Manager rotation steps)",
            runtime=lambda_.Runtime.PYTHON_3_12,
            handler="handler.handler",
            code=lambda_.Code.from_asset(str(FUNCTION_DIR), exclude=["__pycache__", "*.pyc"]),
            timeout=Duration.seconds(60),
            memory_size=256,
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[self.security_group],
            environment={MANAGEMENT_URL_VARIABLE: self.management_url},
            log_group=self.log_group,
        )
        self.schedule = secret.add_rotation_schedule(
            "Rotation", rotation_lambda=self.function, automatically_after=Duration.days(rotation_days)
        )
        # CDK makes the function depend on its role explicitly, which the GetAtt of the role already does
        # (cfn-lint W3005); only the dependency on the role's policy is needed (the
        # rotation permissions RotationSchedule just added).
        policy = self.function.role.node.find_child("DefaultPolicy").node.default_child
        self.function.node.default_child.add_override("DependsOn", [Stack.of(self).get_logical_id(policy)])
