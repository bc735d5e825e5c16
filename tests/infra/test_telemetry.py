"""The ADOT collector sidecar of every service task: traces to X-Ray, metrics to CloudWatch, least privilege."""

from __future__ import annotations

import json

import pytest

from contract.services import service as contract_service
from stacks.components.telemetry import COLLECTOR_IMAGE, COLLECTOR_NAME, EMF_LOG_ACTIONS, XRAY_ACTIONS
from stacks.config import ENVIRONMENTS
from tests.infra.helpers import container_of, env_vars, task_definition_of, task_role_statements

SERVICES = ("inventory", "billing", "gateway", "billing-express")


def _collector(env, name: str) -> dict:
    containers = task_definition_of(env, name)["Properties"]["ContainerDefinitions"]
    (collector,) = [c for c in containers if c["Name"] == COLLECTOR_NAME]
    return collector


def _collector_config(env, name: str) -> dict:
    """AOT_CONFIG_CONTENT with the CloudFormation tokens (the log group's name) replaced by a marker."""
    value = env_vars(_collector(env, name))["AOT_CONFIG_CONTENT"]
    if isinstance(value, dict):  # Fn::Join of text and the log group's Ref
        value = "".join(part if isinstance(part, str) else "LOG_GROUP" for part in value["Fn::Join"][1])
    return json.loads(value)


def _actions(statement: dict) -> list[str]:
    return [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]


@pytest.mark.parametrize("name", SERVICES)
def test_every_task_runs_the_pinned_collector_as_a_non_essential_sidecar(any_env, name):
    """The collector is the pinned ADOT image, not essential (it can never take requests down), read-only."""
    collector = _collector(any_env, name)
    assert collector["Image"] == COLLECTOR_IMAGE
    assert ":latest" not in COLLECTOR_IMAGE
    assert collector["Essential"] is False
    assert collector["ReadonlyRootFilesystem"] is True


@pytest.mark.parametrize("name", SERVICES)
def test_collector_fits_in_the_task_next_to_the_app(any_env, name):
    """The collector's memory limit and CPU leave the app most of the task (no bigger Fargate size needed)."""
    properties = task_definition_of(any_env, name)["Properties"]
    collector = _collector(any_env, name)
    assert collector["Memory"] <= int(properties["Memory"]) // 4
    assert collector["Cpu"] <= int(properties["Cpu"]) // 8


@pytest.mark.parametrize("name", SERVICES)
def test_collector_sends_otlp_traces_to_xray_and_scraped_metrics_to_emf(any_env, name):
    """OTLP/HTTP on the loopback only -> awsxray; the app's own /metrics port -> awsemf in its log group."""
    config = _collector_config(any_env, name)
    port = contract_service("billing" if name == "billing-express" else name).port
    assert config["receivers"]["otlp"]["protocols"] == {"http": {"endpoint": "127.0.0.1:4318"}}
    (scrape,) = config["receivers"]["prometheus"]["config"]["scrape_configs"]
    assert scrape["static_configs"] == [{"targets": [f"127.0.0.1:{port}"]}]
    pipelines = config["service"]["pipelines"]
    assert pipelines["traces"]["receivers"] == ["otlp"] and pipelines["traces"]["exporters"] == ["awsxray"]
    assert pipelines["metrics"]["receivers"] == ["prometheus"] and pipelines["metrics"]["exporters"] == ["awsemf"]
    assert config["exporters"]["awsemf"]["log_group_name"] == "LOG_GROUP"
    assert "request.id" in config["exporters"]["awsxray"]["indexed_attributes"]


@pytest.mark.parametrize("name", SERVICES)
def test_app_exports_spans_to_the_sidecar_sampled_by_config(any_env, name):
    """The app container traces with OTLP to the sidecar, parent-based, at the environment's sampling ratio."""
    settings = env_vars(container_of(any_env, name))
    assert settings["OTEL_TRACES_EXPORTER"] == "otlp"
    assert settings["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"
    assert settings["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert float(settings["OTEL_TRACES_SAMPLER_ARG"]) == ENVIRONMENTS[any_env.name].trace_sampling_ratio


@pytest.mark.parametrize("name", SERVICES)
def test_task_role_gets_exactly_xray_writes_and_its_metrics_log_group(any_env, name):
    """Beyond its secrets (and inventory's poster grants, tested in test_posters.py), the task role may only put
    X-Ray segments/telemetry (no resource-level permissions exist for them) and write log streams of its own
    metrics log group: no X-Ray reads, no other group."""
    statements = [
        s
        for s in task_role_statements(any_env, name)
        if "secretsmanager" not in json.dumps(s) and not _actions(s)[0].startswith(("s3:", "sqs:"))
    ]
    assert len(statements) == 2
    xray = next(s for s in statements if _actions(s)[0].startswith("xray:"))
    logs = next(s for s in statements if _actions(s)[0].startswith("logs:"))
    assert sorted(_actions(xray)) == sorted(XRAY_ACTIONS) and xray["Resource"] == "*"
    assert sorted(_actions(logs)) == sorted(EMF_LOG_ACTIONS)
    (group_id,) = [k for k, v in any_env.resources("Compute", "AWS::Logs::LogGroup").items()
                   if "MetricsLogs" in k and logs["Resource"] == {"Fn::GetAtt": [k, "Arn"]}]
    assert group_id


def test_prod_samples_a_small_share_and_dev_everything():
    """Sampling is per environment: prod keeps 5 % of new traces (cost), dev every one (little traffic)."""
    assert ENVIRONMENTS["prod"].trace_sampling_ratio == 0.05
    assert ENVIRONMENTS["dev"].trace_sampling_ratio == 1.0
