"""Prices the resources of synthesized CloudFormation templates at minimum and at maximum scale.

The model reads only the templates (what would be deployed), never stacks/config.py, so a change in a stack
that the config does not show (a new endpoint, a bigger default) still changes the figure. Each handler turns
the resources of one type into line items; the unit prices come from ``cost.prices``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace

from cost import prices as p
from cost.lines import LineItem, Templates, monthly, of_type, readable_name, resources

Prices = SimpleNamespace
"""One region's price table (``cost.prices.for_region``)."""
Handler = Callable[[Templates, str, Prices], list[LineItem]]


def _fargate(templates: Templates, p: Prices) -> list[LineItem]:
    """One row per ECS service: task size from its task definition, task counts from its scalable target."""
    tasks = dict(of_type(templates, "AWS::ECS::TaskDefinition"))
    targets = [res["Properties"] for _, res in of_type(templates, "AWS::ApplicationAutoScaling::ScalableTarget")]
    items = []
    for lid, service in of_type(templates, "AWS::ECS::Service"):
        props = service["Properties"]
        task = tasks[props["TaskDefinition"]["Ref"]]["Properties"]
        vcpu, gb = int(task["Cpu"]) / 1024, int(task["Memory"]) / 1024
        arch = task.get("RuntimePlatform", {}).get("CpuArchitecture", "X86_64")
        strategy = props.get("CapacityProviderStrategy") or [{"CapacityProvider": "FARGATE"}]
        provider = strategy[0]["CapacityProvider"]
        low = high = int(props.get("DesiredCount", 1))
        for target in targets:
            # The scalable target names its service by GetAtt <service>.Name inside its ResourceId.
            if f'"{lid}"' in json.dumps(target.get("ResourceId")):
                low, high = int(target["MinCapacity"]), int(target["MaxCapacity"])
        per_vcpu, per_gb = p.FARGATE_PER_HOUR[(arch, provider)]
        per_task = monthly(vcpu * per_vcpu + gb * per_gb)
        what = f"Fargate {readable_name(lid, 'Service')}"
        items.append(
            LineItem(
                f"{what} ({vcpu:g} vCPU / {gb:g} GB, {arch}, {provider})",
                f"{low}-{high} tasks",
                f"${per_task:.2f}/task-month",
                low * per_task,
                high * per_task,
            )
        )
    return items


def _container_insights(templates: Templates, p: Prices) -> list[LineItem]:
    items = []
    services = len(of_type(templates, "AWS::ECS::Service"))
    for _, cluster in of_type(templates, "AWS::ECS::Cluster"):
        settings = cluster.get("Properties", {}).get("ClusterSettings", [])
        if {"Name": "containerInsights", "Value": "enabled"} in settings:
            per_cluster, per_service = p.CONTAINER_INSIGHTS_METRICS
            metrics = per_cluster + per_service * services
            cost = metrics * p.CUSTOM_METRIC_PER_MONTH
            items.append(LineItem("Container Insights metrics (assumed)", str(metrics), "$0.30/metric", cost, cost))
    return items


def _rds(templates: Templates, p: Prices) -> list[LineItem]:
    items = []
    for lid, db in of_type(templates, "AWS::RDS::DBInstance"):
        props = db["Properties"]
        klass, copies = props["DBInstanceClass"], 2 if props.get("MultiAZ") else 1
        instance = monthly(p.RDS_POSTGRES_PER_HOUR[klass]) * copies
        storage_price = p.RDS_STORAGE_PER_GB_MONTH[props.get("StorageType", "gp2")] * copies
        low_gb = int(props["AllocatedStorage"])
        high_gb = int(props.get("MaxAllocatedStorage", low_gb))
        az = "Multi-AZ" if copies == 2 else "single-AZ"
        name = readable_name(lid, "Instance")
        items.append(LineItem(f"RDS {name} {klass} {az}", "1", f"${instance:.2f}/month", instance, instance))
        items.append(
            LineItem(
                f"RDS {name} storage ({az})",
                f"{low_gb}-{high_gb} GB",
                f"${storage_price:.3f}/GB-month",
                low_gb * storage_price,
                high_gb * storage_price,
            )
        )
    return items


def _mq(templates: Templates, p: Prices) -> list[LineItem]:
    items = []
    for _, broker in of_type(templates, "AWS::AmazonMQ::Broker"):
        props = broker["Properties"]
        klass = props["HostInstanceType"]
        nodes = 3 if props.get("DeploymentMode") == "CLUSTER_MULTI_AZ" else 1
        per_node = monthly(p.MQ_RABBITMQ_PER_HOUR[klass])
        gb = p.MQ_STORAGE_GB_PER_NODE.get(klass, p.MQ_STORAGE_GB_PER_NODE["default"]) * nodes
        storage = gb * p.MQ_STORAGE_PER_GB_MONTH
        items.append(
            LineItem(
                f"Amazon MQ {klass} nodes",
                str(nodes),
                f"${per_node:.2f}/node-month",
                nodes * per_node,
                nodes * per_node,
            )
        )
        items.append(LineItem("Amazon MQ storage (assumed size)", f"{gb} GB", "$0.10/GB-month", storage, storage))
    return items


def _cache(templates: Templates, p: Prices) -> list[LineItem]:
    items = []
    for _, cache in of_type(templates, "AWS::ElastiCache::ServerlessCache"):
        props = cache["Properties"]
        per_gb_hour, per_million_ecpu, min_gb = p.ELASTICACHE_SERVERLESS[props["Engine"]]
        limits = props.get("CacheUsageLimits", {})
        max_gb = float(limits.get("DataStorage", {}).get("Maximum", min_gb))
        max_ecpu = float(limits.get("ECPUPerSecond", {}).get("Maximum", 0))
        low = monthly(min_gb * per_gb_hour)
        high = monthly(max_gb * per_gb_hour) + max_ecpu * 3600 * p.HOURS_PER_MONTH / 1e6 * per_million_ecpu
        items.append(
            LineItem(
                f"ElastiCache Serverless {props['Engine']} (min metered → ceilings)",
                f"{min_gb:g}-{max_gb:g} GB, 0-{max_ecpu:g} ECPU/s",
                f"${per_gb_hour}/GB-h, ${per_million_ecpu}/M ECPU",
                low,
                high,
            )
        )
    return items


def _alb(templates: Templates, p: Prices) -> list[LineItem]:
    items = []
    for _, alb in of_type(templates, "AWS::ElasticLoadBalancingV2::LoadBalancer"):
        props = alb["Properties"]
        fixed = monthly(p.ALB_PER_HOUR)
        low_lcu, high_lcu = p.ALB_LCUS
        lcu = monthly(p.ALB_LCU_PER_HOUR)
        items.append(LineItem("Application Load Balancer", "1", f"${fixed:.2f}/month", fixed, fixed))
        items.append(
            LineItem(
                "ALB LCUs (assumed)", f"{low_lcu}-{high_lcu}", f"${lcu:.2f}/LCU-month", low_lcu * lcu, high_lcu * lcu
            )
        )
        if props.get("Scheme", "internet-facing") == "internet-facing":
            addresses = len(props.get("Subnets", [])) or 2  # one public IPv4 per AZ it is in
            items.append(_ipv4("ALB public IPv4 addresses", addresses, p))
    return items


def _ipv4(what: str, count: int, p: Prices) -> LineItem:
    each = monthly(p.PUBLIC_IPV4_PER_HOUR)
    return LineItem(what, str(count), f"${each:.2f}/address-month", count * each, count * each)


def _fixed(what: str, unit: str, per_hour: bool = False) -> Handler:
    """A handler for a type priced per resource at the fixed monthly (or hourly) price named ``unit``."""

    def handler(templates: Templates, resource_type: str, p: Prices) -> list[LineItem]:
        count = len(of_type(templates, resource_type))
        price = getattr(p, unit)
        each = monthly(price) if per_hour else price
        return [LineItem(what, str(count), f"${each:.2f}/month", count * each, count * each)] if count else []

    return handler


def _health_checks(templates: Templates, p: Prices) -> list[LineItem]:
    """Route 53 health checks: the base price plus each optional feature the check's config turns on."""
    items = []
    for lid, check in of_type(templates, "AWS::Route53::HealthCheck"):
        config = check["Properties"]["HealthCheckConfig"]
        features = [
            name
            for name, on in (
                ("HTTPS", config.get("Type", "").startswith("HTTPS")),
                ("string matching", "STR_MATCH" in config.get("Type", "")),
                ("fast interval", int(config.get("RequestInterval", 30)) < 30),
                ("latency measurement", bool(config.get("MeasureLatency"))),
            )
            if on
        ]
        cost = p.ROUTE53_HEALTH_CHECK_PER_MONTH + len(features) * p.ROUTE53_HEALTH_CHECK_FEATURE_PER_MONTH
        what = f"Route 53 health check {readable_name(lid, 'Health')} ({', '.join(features) or 'basic'})"
        unit = f"${p.ROUTE53_HEALTH_CHECK_PER_MONTH:.2f} + ${p.ROUTE53_HEALTH_CHECK_FEATURE_PER_MONTH:.2f}/feature"
        items.append(LineItem(what, "1", unit, cost, cost))
    return items


def _canaries(templates: Templates, p: Prices) -> list[LineItem]:
    """Synthetics canaries: runs per month from the schedule's ``rate(N minutes|hours)``."""
    items = []
    for _, canary in of_type(templates, "AWS::Synthetics::Canary"):
        props = canary["Properties"]
        expression = props["Schedule"]["Expression"]
        match = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours)\)", expression)
        if not match:
            raise ValueError(f"canary {props.get('Name')}: cannot price the schedule {expression!r}")
        minutes = int(match.group(1)) * (60 if match.group(2).startswith("hour") else 1)
        runs = p.HOURS_PER_MONTH * 60 // minutes
        cost = runs * p.SYNTHETICS_CANARY_RUN
        items.append(
            LineItem(
                f"Synthetics canary {props.get('Name')} (every {minutes} min)",
                f"{runs:,} runs",
                f"${p.SYNTHETICS_CANARY_RUN}/run",
                cost,
                cost,
            )
        )
    return items


def _endpoints(templates: Templates, p: Prices) -> list[LineItem]:
    az_count = sum(
        len(res["Properties"].get("SubnetIds", []))
        for _, res in of_type(templates, "AWS::EC2::VPCEndpoint")
        if res["Properties"].get("VpcEndpointType") == "Interface"
    )
    each = monthly(p.INTERFACE_ENDPOINT_PER_AZ_HOUR)
    return (
        [
            LineItem(
                "Interface VPC endpoints (endpoint x AZ)",
                str(az_count),
                f"${each:.2f}/AZ-month",
                az_count * each,
                az_count * each,
            )
        ]
        if az_count
        else []
    )


def _waf(templates: Templates, p: Prices) -> list[LineItem]:
    items = []
    for _, acl in of_type(templates, "AWS::WAFv2::WebACL"):
        rules = len(acl["Properties"].get("Rules", []))
        cost = p.WAF_WEB_ACL_PER_MONTH + rules * p.WAF_RULE_PER_MONTH
        items.append(LineItem("WAF web ACL + rules", f"1 + {rules} rules", "$5 + $1/rule", cost, cost))
    return items


#: Handlers of the priced types, by resource type. Types whose charge is computed inside another type's
#: handler (task definitions, scalable targets, the cluster) are in ``FREE_TYPES`` instead.
HANDLERS: dict[str, Handler] = {
    "AWS::ECS::Service": lambda t, _, p: _fargate(t, p) + _container_insights(t, p),
    "AWS::RDS::DBInstance": lambda t, _, p: _rds(t, p),
    "AWS::AmazonMQ::Broker": lambda t, _, p: _mq(t, p),
    "AWS::ElastiCache::ServerlessCache": lambda t, _, p: _cache(t, p),
    "AWS::ElasticLoadBalancingV2::LoadBalancer": lambda t, _, p: _alb(t, p),
    "AWS::EC2::NatGateway": _fixed("NAT gateways (+ data processed)", "NAT_GATEWAY_PER_HOUR", per_hour=True),
    "AWS::EC2::EIP": lambda t, ty, p: [_ipv4("Elastic IPs (NAT gateways)", len(of_type(t, ty)), p)],
    "AWS::EC2::VPCEndpoint": lambda t, _, p: _endpoints(t, p),
    "AWS::WAFv2::WebACL": lambda t, _, p: _waf(t, p),
    "AWS::CloudWatch::Alarm": _fixed("CloudWatch alarms", "ALARM_PER_MONTH"),
    "AWS::CloudWatch::Dashboard": _fixed("CloudWatch dashboards", "DASHBOARD_PER_MONTH"),
    "AWS::Logs::MetricFilter": _fixed("Custom metrics from log metric filters", "CUSTOM_METRIC_PER_MONTH"),
    "AWS::SecretsManager::Secret": _fixed("Secrets Manager secrets", "SECRET_PER_MONTH"),
    "AWS::KMS::Key": _fixed("KMS customer managed keys", "KMS_KEY_PER_MONTH"),
    "AWS::Route53::HealthCheck": lambda t, _, p: _health_checks(t, p),
    "AWS::Synthetics::Canary": lambda t, _, p: _canaries(t, p),
}


def resource_types(templates: Templates) -> set[str]:
    """Every resource type in the templates."""
    return {res["Type"] for _, res in resources(templates)}


def unclassified(types: Iterable[str]) -> list[str]:
    """The types that are neither priced, usage-based nor free: the price table must be extended for them."""
    known = set(HANDLERS) | set(p.USAGE_BASED) | p.FREE_TYPES
    return sorted(set(types) - known)


def price(templates: Templates, region: str = p.REGION) -> list[LineItem]:
    """The priced line items of one stamp (or the geode) in ``region`` (usage-based types as $0 rows with their
    note)."""
    regional = p.for_region(region)
    present = Counter(res["Type"] for _, res in resources(templates))
    items = [
        item
        for resource_type in HANDLERS
        if resource_type in present
        for item in HANDLERS[resource_type](templates, resource_type, regional)
    ]
    items += [
        LineItem(f"{resource_type} (usage-based, not priced)", str(present[resource_type]), note, 0.0, 0.0)
        for resource_type, note in p.USAGE_BASED.items()
        if resource_type in present
    ]
    return items


@dataclass(frozen=True)
class Section:
    """The priced items of one stamp (or of the geode) of an environment."""

    title: str
    region: str
    items: list[LineItem]


def price_environment(parts: Mapping[str, tuple[str, Templates]]) -> list[Section]:
    """Price every part of an environment: ``{title: (region, templates)}`` (each stamp, then the geode)."""
    return [Section(title, region, price(templates, region)) for title, (region, templates) in parts.items()]
