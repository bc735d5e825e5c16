"""NetworkStack: VPC, flow logs, VPC endpoints and the workload security groups."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.config import EnvironmentConfig


class NetworkStack(Stack):
    """VPC over two AZs with public, private-with-egress and isolated subnets.

    The security groups of the three services and of the ALB are created here rather than in the compute
    stack: the data stack references the task groups in its ingress rules and the compute stack depends
    on the data stack, so owning the groups here avoids dependency cycles.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)

        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(config.vpc_cidr),
            max_azs=config.max_azs,
            nat_gateways=config.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="app", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22),
                ec2.SubnetConfiguration(name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24),
            ],
            # Nothing is attached to the default security group; locking it down needs a custom-resource
            # Lambda, which is more attack surface than it removes here.
            restrict_default_security_group=False,
        )

        flow_log_group = logs.LogGroup(
            self,
            "FlowLogs",
            retention=config.log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )

        # The S3 gateway endpoint is free and carries ECR image layers, so it is always on.
        self.vpc.add_gateway_endpoint(
            "S3Endpoint",
            service=ec2.GatewayVpcEndpointAwsService.S3,
            subnets=[ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)],
        )
        if config.vpc_interface_endpoints:
            # Any workload in the VPC may use the endpoints (tasks, and the secret-rotation functions
            # that live in the data stack); the CIDR is the literal from config so the rule is reviewable.
            endpoint_security_group = ec2.SecurityGroup(
                self,
                "EndpointSecurityGroup",
                vpc=self.vpc,
                description="VPC interface endpoints",
                allow_all_outbound=False,
            )
            endpoint_security_group.add_ingress_rule(
                ec2.Peer.ipv4(config.vpc_cidr), ec2.Port.tcp(443), "HTTPS from inside the VPC"
            )
            for endpoint_id, service in (
                ("EcrApiEndpoint", ec2.InterfaceVpcEndpointAwsService.ECR),
                ("EcrDockerEndpoint", ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER),
                ("LogsEndpoint", ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS),
                ("SecretsManagerEndpoint", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER),
                # Inventory long-polls the poster results queue without pause (issue 14).
                ("SqsEndpoint", ec2.InterfaceVpcEndpointAwsService.SQS),
            ):
                self.vpc.add_interface_endpoint(
                    endpoint_id,
                    service=service,
                    subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
                    private_dns_enabled=True,
                    security_groups=[endpoint_security_group],
                    open=False,
                )

        self.inventory_security_group = self._task_security_group("InventoryTasks", "inventory")
        self.billing_security_group = self._task_security_group("BillingTasks", "billing")
        self.gateway_security_group = self._task_security_group("GatewayTasks", "gateway")
        # Listener ports (and, with Cognito/JWT, egress 443) are opened by the compute stack.
        self.alb_security_group = ec2.SecurityGroup(
            self, "Alb", vpc=self.vpc, description="Public application load balancer", allow_all_outbound=False
        )

    def _task_security_group(self, construct_id: str, service: str) -> ec2.SecurityGroup:
        """A task security group that may only call HTTPS (AWS APIs, ECR) until rules are added."""
        group = ec2.SecurityGroup(
            self,
            construct_id,
            vpc=self.vpc,
            description=f"{service} ECS tasks",
            allow_all_outbound=False,
        )
        # ECR, Secrets Manager, CloudWatch Logs and S3 (image layers) are HTTPS APIs reached through the NAT
        # gateway or the VPC endpoints; their addresses are not stable, hence any IPv4 on 443 only.
        group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "AWS APIs over HTTPS")
        return group
