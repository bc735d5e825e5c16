"""Small helpers for reading synthesized CloudFormation templates in tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ENVIRONMENTS = ("dev", "prod")
STACKS = ("Network", "Data", "Auth", "Compute", "Monitoring")
REPO_ROOT = Path(__file__).resolve().parents[2]


def env_vars(container: dict[str, Any]) -> dict[str, Any]:
    """Plain environment variables of a container definition, by name."""
    return {item["Name"]: item["Value"] for item in container.get("Environment", [])}


def secret_names(container: dict[str, Any]) -> set[str]:
    """Names of the ECS secrets of a container definition."""
    return {item["Name"] for item in container.get("Secrets", [])}


def container_of(env, name: str) -> dict[str, Any]:
    """The container definition named ``name`` in the compute stack of ``env``."""
    for task in env.resources("Compute", "AWS::ECS::TaskDefinition").values():
        for container in task["Properties"]["ContainerDefinitions"]:
            if container["Name"] == name:
                return container
    raise AssertionError(f"no container {name!r}")


def task_definition_of(env, name: str) -> dict[str, Any]:
    """The task definition whose container is named ``name``."""
    for task in env.resources("Compute", "AWS::ECS::TaskDefinition").values():
        if any(c["Name"] == name for c in task["Properties"]["ContainerDefinitions"]):
            return task
    raise AssertionError(f"no task definition for {name!r}")


def service_of(env, name: str) -> dict[str, Any]:
    """The ECS service (resource) running the task definition of container ``name``."""
    for logical_id, task in env.resources("Compute", "AWS::ECS::TaskDefinition").items():
        if any(c["Name"] == name for c in task["Properties"]["ContainerDefinitions"]):
            for service in env.resources("Compute", "AWS::ECS::Service").values():
                if service["Properties"]["TaskDefinition"] == {"Ref": logical_id}:
                    return service
    raise AssertionError(f"no service for {name!r}")


def logical_id_of(env, stack: str, prefix: str, resource_type: str) -> str:
    """Logical id of the single ``resource_type`` resource in ``stack`` whose id starts with ``prefix``."""
    matches = [
        logical_id
        for logical_id, resource in env.resources(stack, resource_type).items()
        if logical_id.startswith(prefix)
    ]
    assert len(matches) == 1, f"{prefix}: {matches}"
    return matches[0]


def dumps(value: Any) -> str:
    """Compact JSON, for substring checks on intrinsic functions."""
    return json.dumps(value, sort_keys=True)
