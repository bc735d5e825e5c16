"""Dated on-demand list prices (USD) for every resource type the stacks synthesize, per region used.

Date: 2026-11-29. Source: the AWS public pricing pages (aws.amazon.com/<service>/pricing) for eu-west-1
(Ireland) and us-east-1 (N. Virginia, prod's second stamp and the geode), on-demand, as known to the author; they
were NOT re-checked online when this file was written (the machine that wrote it has no internet access). Check
them with the AWS Pricing Calculator before relying on a figure. Free tiers are ignored (a long-lived account has
used them up); taxes are excluded.

The module-level constants are eu-west-1's; ``REGION_PRICES`` holds what differs in each other region used, and
``for_region`` gives one region's full table (a region not listed here is refused: add its prices first).

Every resource type that can appear in a template is in exactly one of three places: priced by ``cost.model``
(its handlers), ``USAGE_BASED`` (costs depend on traffic; priced at $0 with the note saying why), or
``FREE_TYPES``. tests/infra/test_cost.py fails for any synthesized type in none of them.
"""

from __future__ import annotations

from types import SimpleNamespace

PRICE_DATE = "2026-11-29"
REGION = "eu-west-1"
HOURS_PER_MONTH = 730
"""AWS's own convention for monthly figures (8,760 hours / 12)."""

# --- compute ------------------------------------------------------------------------------------------------
FARGATE_PER_HOUR = {
    # (architecture, capacity provider): (per vCPU-hour, per GB-hour)
    ("X86_64", "FARGATE"): (0.04048, 0.004445),
    ("ARM64", "FARGATE"): (0.03238, 0.00356),
    # Spot has no list price (it follows demand); about 70 % below on-demand is the long-run figure used here.
    ("X86_64", "FARGATE_SPOT"): (0.012144, 0.0013335),
    ("ARM64", "FARGATE_SPOT"): (0.009714, 0.001068),
}
CONTAINER_INSIGHTS_METRICS = (8, 14)
"""Assumed custom metrics Container Insights (standard) publishes: per cluster, and per service."""
CUSTOM_METRIC_PER_MONTH = 0.30
"""CloudWatch custom metric (also each metric a log metric filter publishes)."""

# --- data ---------------------------------------------------------------------------------------------------
RDS_POSTGRES_PER_HOUR = {"db.t4g.micro": 0.018, "db.t4g.small": 0.036, "db.m7g.large": 0.183, "db.m7g.xlarge": 0.366}
"""Single-AZ PostgreSQL instance-hours; a Multi-AZ (one standby) deployment costs twice as much."""
RDS_STORAGE_PER_GB_MONTH = {"gp3": 0.127, "gp2": 0.127}
"""Single-AZ; doubled for Multi-AZ. Autoscaling storage is priced at AllocatedStorage (min) and
MaxAllocatedStorage (max)."""
MQ_RABBITMQ_PER_HOUR = {"mq.t3.micro": 0.0324, "mq.m5.large": 0.3036, "mq.m7g.large": 0.2916}
"""Per broker node; CLUSTER_MULTI_AZ runs three nodes."""
MQ_STORAGE_PER_GB_MONTH = 0.10
MQ_STORAGE_GB_PER_NODE = {"mq.t3.micro": 20, "default": 200}
"""Assumed EBS volume per RabbitMQ node (the size AWS attaches for the instance family)."""
ELASTICACHE_SERVERLESS = {"valkey": (0.0837, 0.0023, 0.1), "redis": (0.125, 0.0034, 1.0)}
"""Per engine: (per GB-hour stored, per million ECPU, minimum metered GB). Minimum scale: the minimum metered
storage and no requests; maximum scale: the configured storage ceiling and the ECPU/s ceiling all month."""

# --- network ------------------------------------------------------------------------------------------------
NAT_GATEWAY_PER_HOUR = 0.048
"""Plus $0.048 per GB processed: traffic, not priced here."""
PUBLIC_IPV4_PER_HOUR = 0.005
"""Every public IPv4 address (NAT gateway EIPs, one per AZ of an internet-facing ALB)."""
ALB_PER_HOUR = 0.0252
ALB_LCU_PER_HOUR = 0.008
ALB_LCUS = (1, 5)
"""Assumed LCUs in use all month at minimum and at maximum scale (a stated assumption, not derived)."""
INTERFACE_ENDPOINT_PER_AZ_HOUR = 0.011
"""Plus $0.01 per GB processed (traffic, not priced)."""

# --- security and operations --------------------------------------------------------------------------------
KMS_KEY_PER_MONTH = 1.00
SECRET_PER_MONTH = 0.40
ALARM_PER_MONTH = 0.10
"""Standard-resolution alarm; metric-math alarms cost per metric queried (counted as one here)."""
DASHBOARD_PER_MONTH = 3.00
WAF_WEB_ACL_PER_MONTH = 5.00
WAF_RULE_PER_MONTH = 1.00
"""Per rule or managed rule group in the web ACL; requests ($0.60 per million) are traffic."""

# --- outside health monitoring (issue 16) ---------------------------------------------------------------------
ROUTE53_HEALTH_CHECK_PER_MONTH = 0.50
"""A health check of an AWS endpoint (the stamps' ALBs, in the same account); Route 53 is global."""
ROUTE53_HEALTH_CHECK_FEATURE_PER_MONTH = 1.00
"""Each optional feature of such a check: HTTPS, string matching, fast interval (10 s), latency measurement."""
SYNTHETICS_CANARY_RUN = 0.0012
"""Per canary run (its Lambda, logs and artifacts are billed on top: a few cents a month at these intervals)."""

# --- usage-based: $0 here, with why -------------------------------------------------------------------------
USAGE_BASED = {
    "AWS::Lambda::Function": "per request and GB-second (a few invocations per poster/invoice/rotation)",
    "AWS::Serverless::Application": "the rotation Lambda it deploys: per invocation, once per rotation period",
    "AWS::SQS::Queue": "$0.40 per million requests",
    "AWS::SNS::Topic": "per notification (alarms, budget alerts)",
    "AWS::S3::Bucket": "$0.023 per GB-month stored plus requests (posters, invoices, web assets, access logs)",
    "AWS::CloudFront::Distribution": "per GB out and per request",
    "AWS::Cognito::UserPool": "per monthly active user (Essentials/Plus tiers)",
    "AWS::Logs::LogGroup": "$0.57 per GB ingested, $0.03 per GB-month stored",
    "AWS::EC2::FlowLog": "log ingestion of the flow records (see log groups)",
    "AWS::Backup::BackupPlan": "$0.095 per GB-month of recovery points (+ cross-region copy transfer)",
    "AWS::Events::Rule": "custom/AWS service events to SNS: free tier of the default bus",
    "AWS::Lambda::EventSourceMapping": "the polled queue's requests (see SQS)",
    "AWS::WAFv2::LoggingConfiguration": "log ingestion of WAF records (see log groups)",
    "Custom::CDKBucketDeployment": "a Lambda run at deployment time only",
    "Custom::AWS": "a Lambda run at deployment time only (the other stamps' shared-pool reads and web client)",
    "AWS::Route53::RecordSet": "alias queries to AWS resources are free; the geode's latency records "
    "$0.60 per million queries (the hosted zone pre-exists)",
}

FREE_TYPES = frozenset(
    {
        "AWS::ApplicationAutoScaling::ScalableTarget",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        "AWS::Backup::BackupSelection",
        "AWS::Backup::BackupVault",
        "AWS::Budgets::Budget",  # the first two budgets of an account are free
        "AWS::CertificateManager::Certificate",  # public ACM certificates
        "AWS::CloudFront::CachePolicy",
        "AWS::CloudFront::Function",  # per invocation, far inside the free allowance at this traffic
        "AWS::CloudFront::OriginAccessControl",
        "AWS::CloudFront::ResponseHeadersPolicy",
        "AWS::Cognito::UserPoolClient",
        "AWS::Cognito::UserPoolDomain",
        "AWS::Cognito::UserPoolGroup",
        "AWS::Cognito::UserPoolResourceServer",
        "AWS::EC2::InternetGateway",
        "AWS::EC2::Route",
        "AWS::EC2::RouteTable",
        "AWS::EC2::SecurityGroup",
        "AWS::EC2::SecurityGroupEgress",
        "AWS::EC2::SecurityGroupIngress",
        "AWS::EC2::Subnet",
        "AWS::EC2::SubnetRouteTableAssociation",
        "AWS::EC2::VPC",
        "AWS::EC2::VPCGatewayAttachment",
        "AWS::ECS::Cluster",  # the cluster itself; Container Insights is priced separately
        "AWS::ECS::ClusterCapacityProviderAssociations",
        "AWS::ECS::TaskDefinition",  # priced through the services that run it
        "AWS::ElastiCache::User",
        "AWS::ElastiCache::UserGroup",
        "AWS::ElasticLoadBalancingV2::Listener",
        "AWS::ElasticLoadBalancingV2::ListenerCertificate",
        "AWS::ElasticLoadBalancingV2::ListenerRule",
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        "AWS::IAM::Policy",
        "AWS::IAM::Role",
        "AWS::Lambda::LayerVersion",
        "AWS::Lambda::Permission",
        "AWS::RDS::DBParameterGroup",
        "AWS::RDS::DBSubnetGroup",
        "AWS::S3::BucketPolicy",
        "AWS::SNS::Subscription",
        "AWS::SSM::Parameter",  # standard tier: the stamp registry and the shared pool's ids
        "AWS::SNS::TopicPolicy",
        "AWS::SQS::QueuePolicy",
        "AWS::SecretsManager::ResourcePolicy",
        "AWS::SecretsManager::RotationSchedule",
        "AWS::SecretsManager::SecretTargetAttachment",
        "AWS::ServiceDiscovery::HttpNamespace",  # an HTTP namespace without instances registered via Cloud Map API
        "AWS::WAFv2::WebACLAssociation",
    }
)
"""Resource types with no charge of their own (the charge, if any, belongs to another listed type)."""


#: What differs from the eu-west-1 constants above in each other region a stamp or the geode uses (us-east-1 is
#: a little cheaper for most regional services; KMS, Secrets Manager, CloudWatch, WAF and IPv4 cost the same).
REGION_PRICES: dict[str, dict[str, object]] = {
    REGION: {},
    "us-east-1": {
        "RDS_POSTGRES_PER_HOUR": {
            "db.t4g.micro": 0.016, "db.t4g.small": 0.032, "db.m7g.large": 0.168, "db.m7g.xlarge": 0.336,
        },
        "RDS_STORAGE_PER_GB_MONTH": {"gp3": 0.115, "gp2": 0.115},
        "MQ_RABBITMQ_PER_HOUR": {"mq.t3.micro": 0.03, "mq.m5.large": 0.288, "mq.m7g.large": 0.2712},
        "ELASTICACHE_SERVERLESS": {"valkey": (0.084, 0.0023, 0.1), "redis": (0.125, 0.0034, 1.0)},
        "NAT_GATEWAY_PER_HOUR": 0.045,
        "ALB_PER_HOUR": 0.0225,
        "INTERFACE_ENDPOINT_PER_AZ_HOUR": 0.01,
    },
}  # fmt: skip


def for_region(region: str) -> SimpleNamespace:
    """Every price of this module as it applies in ``region`` (attributes named like the constants)."""
    if region not in REGION_PRICES:
        raise KeyError(f"no prices for {region}: add them to cost/prices.py (REGION_PRICES) first")
    table = {name: value for name, value in globals().items() if name.isupper()}
    return SimpleNamespace(**{**table, **REGION_PRICES[region], "REGION": region})
