"""The AWS Distro for OpenTelemetry collector as a sidecar: traces to X-Ray, the /metrics scrape to CloudWatch.

Why a sidecar and not the ADOT Python distro (docs/tracing.md, "On AWS"): the service keeps the plain
OpenTelemetry SDK it runs locally and exports OTLP/HTTP to 127.0.0.1:4318, without AWS request signing or
the distro's auto-instrumentation in the image; the collector batches and retries off the request path, and
the same collector turns the Prometheus ``/metrics`` every service already serves into CloudWatch metrics
(EMF) without a metrics SDK in the app. Its cost: a share of the task's own CPU and memory (no Fargate
charge of its own; it is sized to fit the smallest task, 0.25 vCPU / 512 MiB).
"""

from __future__ import annotations

import json

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from contract import environment as var

#: The ADOT collector image, pinned (a new version is a tested change, not a silent one).
COLLECTOR_IMAGE = "public.ecr.aws/aws-observability/aws-otel-collector:v0.49.0"
COLLECTOR_NAME = "adot-collector"
#: OTLP/HTTP on the task's loopback only: nothing outside the task can send spans to it.
OTLP_HTTP = "127.0.0.1:4318"
#: CPU units and memory (MiB) the collector gets out of the task's allocation.
COLLECTOR_CPU = 32
COLLECTOR_MEMORY_RESERVATION_MIB = 48
COLLECTOR_MEMORY_LIMIT_MIB = 128
#: What the services' Prometheus counters become in CloudWatch: a few metrics with few dimensions (each
#: metric/dimension pair is a billed custom metric); everything else stays queryable in the metrics log group.
METRIC_DECLARATIONS = [
    {"dimensions": [["route", "status"]], "metric_name_selectors": ["^http_requests_total$"]},
    {"dimensions": [["outcome"]], "metric_name_selectors": ["^billing_messages_published_total$",
                                                           "^billing_messages_consumed_total$"]},
    # The saga's outbox (billing, inventory): the age of its oldest pending event, alarmed on when stuck.
    {"dimensions": [["outbox"]], "metric_name_selectors": ["^outbox_oldest_pending_age_seconds$"]},
]
#: The X-Ray permissions of the exporter (no X-Ray sampling rules: the SDK samples, OTEL_TRACES_SAMPLER_ARG).
XRAY_ACTIONS = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"]
#: What the EMF exporter does in its one log group (the group exists, so no CreateLogGroup).
EMF_LOG_ACTIONS = ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]


def collector_config(service_name: str, port: int, region: str, metrics_log_group: str) -> str:
    """The collector's configuration (AOT_CONFIG_CONTENT): OTLP traces -> X-Ray, /metrics -> EMF."""
    config = {
        "receivers": {
            "otlp": {"protocols": {"http": {"endpoint": OTLP_HTTP}}},
            "prometheus": {"config": {"scrape_configs": [{
                "job_name": service_name,
                "scrape_interval": "60s",
                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
            }]}},
        },
        "processors": {"batch/traces": {"timeout": "1s", "send_batch_size": 50}, "batch/metrics": {"timeout": "60s"}},
        "exporters": {
            # request.id becomes an X-Ray annotation: the console finds a trace by the id in a log line.
            "awsxray": {"region": region, "indexed_attributes": ["request.id", "messaging.message.id"]},
            "awsemf": {
                "region": region,
                "namespace": f"Movies/{service_name}",
                "log_group_name": metrics_log_group,
                "log_stream_name": "{TaskId}",
                "dimension_rollup_option": "NoDimensionRollup",
                "metric_declarations": METRIC_DECLARATIONS,
            },
        },
        "service": {"pipelines": {
            "traces": {"receivers": ["otlp"], "processors": ["batch/traces"], "exporters": ["awsxray"]},
            "metrics": {"receivers": ["prometheus"], "processors": ["batch/metrics"], "exporters": ["awsemf"]},
        }},
    }
    # JSON is YAML: one line, no indentation to get wrong in an environment variable.
    return json.dumps(config, separators=(",", ":"))


def tracing_environment(sampling_ratio: float) -> dict[str, str]:
    """The app container's tracing settings: OTLP to the sidecar, parent-based ratio sampling."""
    if not 0.0 <= sampling_ratio <= 1.0:
        raise ValueError(f"trace sampling ratio must be between 0 and 1, got {sampling_ratio}")
    return {
        var.OTEL_TRACES_EXPORTER.name: "otlp",
        var.OTEL_EXPORTER_OTLP_ENDPOINT.name: f"http://{OTLP_HTTP}",
        var.OTEL_TRACES_SAMPLER.name: "parentbased_traceidratio",
        var.OTEL_TRACES_SAMPLER_ARG.name: str(sampling_ratio),
    }


class AdotSidecar(Construct):
    """The collector container in ``task_definition``, its metrics log group and its task-role permissions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        task_definition: ecs.FargateTaskDefinition,
        service_name: str,
        port: int,
        log_group: logs.ILogGroup,
        log_retention: logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        region = Stack.of(self).region
        self.metrics_log_group = logs.LogGroup(
            self, "MetricsLogs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        self.container = task_definition.add_container(
            "collector",
            container_name=COLLECTOR_NAME,
            image=ecs.ContainerImage.from_registry(COLLECTOR_IMAGE),
            # Not essential: a collector that dies costs traces and metrics, never the service's requests.
            essential=False,
            readonly_root_filesystem=True,
            cpu=COLLECTOR_CPU,
            memory_reservation_mib=COLLECTOR_MEMORY_RESERVATION_MIB,
            memory_limit_mib=COLLECTOR_MEMORY_LIMIT_MIB,
            environment={
                "AOT_CONFIG_CONTENT": collector_config(
                    service_name, port, region, self.metrics_log_group.log_group_name
                )
            },
            logging=ecs.LogDriver.aws_logs(stream_prefix=COLLECTOR_NAME, log_group=log_group),
        )
        task_definition.add_to_task_role_policy(iam.PolicyStatement(actions=XRAY_ACTIONS, resources=["*"]))
        task_definition.add_to_task_role_policy(
            iam.PolicyStatement(actions=EMF_LOG_ACTIONS, resources=[self.metrics_log_group.log_group_arn])
        )
