"""NetworkStack: subnets, NAT gateways per env, flow logs, endpoints and the workload security groups."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.infra


def test_vpc_has_public_private_and_isolated_subnets_in_two_azs(any_env):
    """Two AZs x (public, private-with-egress, isolated) = six subnets."""
    subnets = any_env.resources("Network", "AWS::EC2::Subnet").values()
    kinds = sorted(
        next(t["Value"] for t in s["Properties"]["Tags"] if t["Key"] == "aws-cdk:subnet-type") for s in subnets
    )
    assert kinds == ["Isolated", "Isolated", "Private", "Private", "Public", "Public"]


def test_public_subnets_do_not_assign_public_ips_to_isolated_or_private(any_env):
    """Only public subnets map public IPs on launch."""
    for subnet in any_env.resources("Network", "AWS::EC2::Subnet").values():
        kind = next(t["Value"] for t in subnet["Properties"]["Tags"] if t["Key"] == "aws-cdk:subnet-type")
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is (kind == "Public")


@pytest.mark.parametrize(("env_name", "expected"), [("dev", 1), ("prod", 2)])
def test_nat_gateway_count_follows_config(synthesized, env_name, expected):
    """dev shares one NAT gateway; prod has one per AZ so egress survives an AZ failure."""
    assert len(synthesized[env_name].resources("Network", "AWS::EC2::NatGateway")) == expected


def test_vpc_flow_logs_go_to_a_log_group_with_retention(any_env):
    """All traffic is logged to CloudWatch Logs with the configured retention."""
    flow_log = any_env.only("Network", "AWS::EC2::FlowLog")["Properties"]
    assert flow_log["TrafficType"] == "ALL"
    assert flow_log["LogDestinationType"] == "cloud-watch-logs"
    group = any_env.only("Network", "AWS::Logs::LogGroup")["Properties"]
    assert group["RetentionInDays"] == {"dev": 7, "prod": 90}[any_env.name]


def test_s3_gateway_endpoint_is_always_present(any_env):
    """The free S3 gateway endpoint carries ECR image layers in every environment."""
    endpoints = any_env.resources("Network", "AWS::EC2::VPCEndpoint").values()
    gateways = [e for e in endpoints if e["Properties"].get("VpcEndpointType") == "Gateway"]
    assert len(gateways) == 1
    assert ".s3" in str(gateways[0]["Properties"]["ServiceName"])


@pytest.mark.parametrize(("env_name", "expected"), [("dev", 0), ("prod", 5)])
def test_interface_endpoints_follow_config(synthesized, env_name, expected):
    """ECR api/dkr, Logs, Secrets Manager and SQS (inventory's poster results) interface endpoints only where the
    config asks (prod)."""
    endpoints = synthesized[env_name].resources("Network", "AWS::EC2::VPCEndpoint").values()
    interfaces = [e for e in endpoints if e["Properties"].get("VpcEndpointType") == "Interface"]
    assert len(interfaces) == expected
    assert all(e["Properties"]["PrivateDnsEnabled"] for e in interfaces)


def test_interface_endpoint_security_group_admits_https_from_the_vpc_only(prod):
    """The endpoints accept 443 from the VPC CIDR and nothing else."""
    groups = prod.resources("Network", "AWS::EC2::SecurityGroup").values()
    endpoint_group = next(g for g in groups if g["Properties"]["GroupDescription"] == "VPC interface endpoints")
    assert endpoint_group["Properties"]["SecurityGroupIngress"] == [
        {
            "CidrIp": "10.20.0.0/16",
            "Description": "HTTPS from inside the VPC",
            "FromPort": 443,
            "IpProtocol": "tcp",
            "ToPort": 443,
        }
    ]


def test_task_security_groups_allow_only_https_egress_to_the_internet(any_env):
    """Task groups start closed: their only inline egress is 443 (AWS APIs); other egress is per peer."""
    groups = any_env.resources("Network", "AWS::EC2::SecurityGroup").values()
    tasks = [g for g in groups if g["Properties"]["GroupDescription"].endswith("ECS tasks")]
    assert len(tasks) == 3
    for group in tasks:
        assert group["Properties"]["SecurityGroupEgress"] == [
            {
                "CidrIp": "0.0.0.0/0",
                "Description": "AWS APIs over HTTPS",
                "FromPort": 443,
                "IpProtocol": "tcp",
                "ToPort": 443,
            }
        ]
        assert "SecurityGroupIngress" not in group["Properties"]
