"""MicroservicesStage: stack set, naming, wiring by references, protection and tags."""

from __future__ import annotations

import pytest

from tests.infra.helpers import STACKS

pytestmark = pytest.mark.infra


def test_stage_creates_the_six_stacks_named_after_the_environment(any_env):
    """Network, Data, Auth, Compute, Posters and Monitoring, named Movies-<env>-<Stack> (CLI and pipeline
    alike)."""
    names = [stack.stack_name for stack in any_env.stage.stacks]
    assert names == [f"Movies-{any_env.name}-{stack}" for stack in STACKS]


def test_stacks_are_wired_by_cross_stack_references(any_env):
    """Compute imports what Network, Data and Auth export; nothing is looked up by a hard-coded name."""
    compute = str(any_env.templates["Compute"])
    for producer in ("Network", "Data", "Auth"):
        assert f"Movies-{any_env.name}-{producer}:ExportsOutput" in compute


@pytest.mark.parametrize(("env_name", "protected"), [("dev", False), ("prod", True)])
def test_termination_protection_follows_config(synthesized, env_name, protected):
    """prod stacks have termination protection; dev stacks can be destroyed."""
    assert all(stack.termination_protection is protected for stack in synthesized[env_name].stage.stacks)


def test_resources_are_tagged_with_project_and_environment(any_env):
    """Tags from config reach the resources (cost allocation, ownership)."""
    cluster = any_env.only("Compute", "AWS::ECS::Cluster")["Properties"]
    assert {"Key": "Environment", "Value": any_env.name} in cluster["Tags"]
    assert {"Key": "Project", "Value": "movies"} in cluster["Tags"]


def test_synthesis_needs_no_aws_account(any_env):
    """Stacks are account-agnostic in tests/CI (no look-ups), with a concrete default region."""
    for stack in any_env.stage.stacks:
        assert stack.region == "eu-west-1"
        assert stack.account.startswith("${Token[")


def test_cli_default_region_does_not_override_the_config(monkeypatch):
    """The CDK CLI sets CDK_DEFAULT_REGION=us-east-1 when no region is configured: the stage still targets the
    config's region (one region everywhere)."""
    from stacks.application import build_app
    from tests.infra.helpers import cdk_context

    monkeypatch.setenv("CDK_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("CDK_DEFAULT_ACCOUNT", raising=False)
    _, stage = build_app(context={**cdk_context(), "env": "dev"}, nag=False, validation=False)
    assert {stack.region for stack in stage.stacks} == {"eu-west-1"}
    _, stage = build_app(context={**cdk_context(), "env": "dev", "region": "eu-central-1"}, nag=False, validation=False)
    assert {stack.region for stack in stage.stacks} == {"eu-central-1"}
