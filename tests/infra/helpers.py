"""Small helpers for reading synthesized CloudFormation templates in tests.

Look-ups go through ``aws_cdk.assertions`` (``Template.find_resources`` with ``Match`` patterns) on the
templates the session fixture synthesized once; the environments and stack ids come from the code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from aws_cdk.assertions import Match

from contract import environment
from contract.shards import MAX_SHARDS, shard_variable
from stacks.config import ENVIRONMENTS as ENVIRONMENT_CONFIGS
from stacks.stage import STACK_IDS

ENVIRONMENTS = tuple(ENVIRONMENT_CONFIGS)
"""Every environment of stacks/config.py; each is synthesized once per session."""
STACKS = STACK_IDS
"""The stacks of a stage, in deployment order."""
REPO_ROOT = Path(__file__).resolve().parents[2]

T = TypeVar("T")


#: CDK context that bundles no stack's assets: the poster filters' asset would run pip at every synthesis.
#: Their hash is computed without bundling (stacks/components/lambda_bundle.py); one test bundles for real.
NO_BUNDLING = {"aws:cdk:bundling-stacks": []}


def cdk_context(*, with_lookups: bool = False, bundling: bool = False) -> dict[str, Any]:
    """The context of ``cdk.json`` (plus the cached look-ups of ``cdk.context.json``), as the CDK CLI passes it,
    without asset bundling unless ``bundling``."""
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    if with_lookups:
        context.update(json.loads((REPO_ROOT / "cdk.context.json").read_text()))
    if not bundling:
        context.update(NO_BUNDLING)
    return context


@contextmanager
def environment_without(*keys: str) -> Iterator[None]:
    """Remove ``keys`` from ``os.environ`` for the duration of the block (no credentials, no default account)."""
    saved = {key: os.environ.pop(key, None) for key in keys}
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is not None:
                os.environ[key] = value


def synth_with_nag(
    build: Callable[[str, bool], tuple[Any, T]], outdir: Path
) -> tuple[Any, T, Path, list[dict[str, str]]]:
    """Synthesize ``build(outdir, nag=True)``; if cdk-nag reports findings, keep them and synthesize without it.

    cdk-nag fails synthesis by design; the findings (rule, construct path, description) are read from the
    validation report, and the app is built again without cdk-nag (in ``outdir/plain``) so that the other
    tests still get templates. Returns the cloud assembly, what ``build`` returned with the app, the output
    directory actually used and the findings.
    """
    app, built = build(str(outdir / "nag"), True)
    try:
        return app.synth(), built, outdir / "nag", []
    except RuntimeError as error:
        if "ValidationFailed" not in str(error):
            raise
    report = json.loads((outdir / "nag" / "validation-report.json").read_text())
    findings = [
        {"rule": violation["ruleName"], "path": construct["constructPath"], "description": violation["description"]}
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    ]
    app, built = build(str(outdir / "plain"), False)
    return app.synth(), built, outdir / "plain", findings


def env_vars(container: dict[str, Any]) -> dict[str, Any]:
    """Plain environment variables of a container definition, by name."""
    return {item["Name"]: item["Value"] for item in container.get("Environment", [])}


def contract_names_of(service: str) -> frozenset[str]:
    """The variables ``service`` reads by the contract: ``contract.environment``'s list and, for a service that
    reads BILLING_SHARDS, each shard's own database variables (``BILLING_SHARD_<k>_DATABASE_HOST``...,
    contract.shards), whose names depend on the shard count."""
    from stacks.compute import SHARD_DATABASE_VARIABLES

    names = environment.names_of(service)
    if environment.BILLING_SHARDS.name not in names:
        return names
    shards = {shard_variable(k, v.name) for k in range(1, MAX_SHARDS) for v in SHARD_DATABASE_VARIABLES}
    return names | shards


def secret_names(container: dict[str, Any]) -> set[str]:
    """Names of the ECS secrets of a container definition."""
    return {item["Name"] for item in container.get("Secrets", [])}


def _task_definitions_with(env, name: str) -> dict[str, dict[str, Any]]:
    """Task definitions (by logical id) with a container named ``name``."""
    pattern = {"Properties": {"ContainerDefinitions": Match.array_with([Match.object_like({"Name": name})])}}
    return env.resources("Compute", "AWS::ECS::TaskDefinition", pattern)


def task_definition_of(env, name: str) -> dict[str, Any]:
    """The task definition whose container is named ``name`` (exactly one)."""
    found = _task_definitions_with(env, name)
    assert len(found) == 1, f"task definitions with a {name!r} container: {sorted(found)}"
    return next(iter(found.values()))


def container_of(env, name: str) -> dict[str, Any]:
    """The container definition named ``name`` in the compute stack of ``env``."""
    containers = task_definition_of(env, name)["Properties"]["ContainerDefinitions"]
    return next(container for container in containers if container["Name"] == name)


def service_of(env, name: str) -> dict[str, Any]:
    """The ECS service (resource) running the task definition of container ``name`` (exactly one)."""
    (task_id,) = _task_definitions_with(env, name)
    found = env.resources("Compute", "AWS::ECS::Service", {"Properties": {"TaskDefinition": {"Ref": task_id}}})
    assert len(found) == 1, f"services running {task_id}: {sorted(found)}"
    return next(iter(found.values()))


def task_role_statements(env, name: str) -> list[dict[str, Any]]:
    """Every IAM statement attached to the task role of service ``name`` (compute stack)."""
    role = task_definition_of(env, name)["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
    return [
        statement
        for policy in env.resources("Compute", "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def render(value: Any) -> str:
    """A resolved string with its tokens as placeholders (``<AWS::AccountId>``, ``<Id.Arn>``, ``<import>``)."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return f"<{value['Ref']}>"
    if "Fn::GetAtt" in value:
        return "<{}.{}>".format(*value["Fn::GetAtt"])
    if "Fn::ImportValue" in value:
        return "<import>"
    delimiter, parts = value["Fn::Join"]
    return delimiter.join(render(part) for part in parts)


def logical_id_of(env, stack: str, prefix: str, resource_type: str) -> str:
    """Logical id of the single ``resource_type`` resource in ``stack`` whose id starts with ``prefix``."""
    matches = [logical_id for logical_id in env.resources(stack, resource_type) if logical_id.startswith(prefix)]
    assert len(matches) == 1, f"{prefix}: {matches}"
    return matches[0]


def dumps(value: Any) -> str:
    """Compact JSON, for substring checks on intrinsic functions."""
    return json.dumps(value, sort_keys=True)
