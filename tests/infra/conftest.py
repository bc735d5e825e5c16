"""Synthesizes the CDK app once per environment per test session and hands the templates to the tests.

Each environment is synthesized exactly once (session scope) with cdk-nag attached, without AWS
credentials (no account: no look-ups) and with the built-in CloudFormation validator off (cfn-lint runs
separately, see test_cfn_lint.py). If cdk-nag reports findings, synthesis fails by design; the fixture
then keeps the report for test_nag.py and synthesizes again without cdk-nag so the other tests still run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from tests.infra.helpers import ENVIRONMENTS, cdk_context, environment_without, synth_with_nag

# jsii prints a banner on every start under Node 20; the tests do not need it.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


@dataclass
class SynthesizedEnv:
    """One synthesized environment: its stage, templates by stack name and the cdk-nag findings."""

    name: str
    outdir: Path
    stage: Any
    templates: dict[str, dict[str, Any]]
    template_paths: dict[str, Path]
    metadata: dict[str, dict[str, Any]]
    nag_findings: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    deployment: Any = None
    """The ``EnvironmentDeployment``: every stamp's stage and the geode's (``stage`` is the first stamp's)."""
    parts: dict[str, tuple[str, dict[str, dict[str, Any]]]] = field(default_factory=dict)
    """Every stamp's (and the geode's) region and templates, as ``make cost`` prices them (cost.__main__.Parts)."""
    other_template_paths: list[Path] = field(default_factory=list)
    """The templates of the other stamps and of the geode (cfn-lint reads them too)."""
    _assertions: dict[str, Template] = field(default_factory=dict, repr=False)

    def template(self, stack: str) -> Template:
        """``stack``'s template as an ``aws_cdk.assertions.Template`` (built once, from the synthesized JSON)."""
        if stack not in self._assertions:
            self._assertions[stack] = Template.from_json(self.templates[stack])
        return self._assertions[stack]

    def part_template(self, part: str, stack: str) -> Template:
        """The template of ``stack`` (e.g. ``Compute``) of another stamp (``stamp us``) or of the geode
        (``part`` as in ``parts``), as an ``aws_cdk.assertions.Template``."""
        key = f"{part}/{stack}"
        if key not in self._assertions:
            self._assertions[key] = Template.from_json(self.parts[part][1][stack])
        return self._assertions[key]

    def resources(self, stack: str, resource_type: str, props: Any = None) -> dict[str, dict[str, Any]]:
        """Resources of ``resource_type`` in ``stack`` by logical id, optionally matching ``props``
        (a ``Match`` pattern over the whole resource, e.g. ``{"Properties": {...}}``)."""
        return self.template(stack).find_resources(resource_type, props)

    def only(self, stack: str, resource_type: str) -> dict[str, Any]:
        """The single resource of ``resource_type`` in ``stack`` (fails if there are 0 or several)."""
        self.template(stack).resource_count_is(resource_type, 1)
        return next(iter(self.resources(stack, resource_type).values()))


def _synthesize(env_name: str, outdir: Path) -> SynthesizedEnv:
    from cost.__main__ import parts_of
    from stacks.application import build_environment_app

    context = {**cdk_context(), "env": env_name}
    assembly, deployment, outdir, findings = synth_with_nag(
        lambda out, nag: build_environment_app(context=context, outdir=out, nag=nag, validation=False), outdir
    )
    stage = deployment.stamps[0]

    templates, paths, metadata = {}, {}, {}
    for stack in stage.stacks:
        short = stack.node.id
        artifact = assembly.get_stack_artifact(stack.artifact_id)
        paths[short] = Path(artifact.template_full_path)
        templates[short] = json.loads(paths[short].read_text())
        meta_file = paths[short].with_name(f"{stack.artifact_id}.metadata.json")
        metadata[short] = json.loads(meta_file.read_text()) if meta_file.exists() else {}
    annotations = [
        {"path": path, "type": entry["type"], "data": entry.get("data")}
        for stack_meta in metadata.values()
        for path, entries in stack_meta.items()
        for entry in entries
        if entry["type"] in ("aws:cdk:warning", "aws:cdk:error")
    ]
    def template_path(stack) -> Path:
        return Path(assembly.get_stack_artifact(stack.artifact_id).template_full_path)

    parts = parts_of(deployment, lambda stack: json.loads(template_path(stack).read_text()))
    others = [template_path(stack) for stacks in deployment.stacks_by_stamp.values() for stack in stacks]
    others = [path for path in others if path not in paths.values()]
    return SynthesizedEnv(
        env_name, outdir, stage, templates, paths, metadata, findings, annotations, deployment, parts, others
    )


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SynthesizedEnv]]:
    """Both environments, synthesized once per session, with CDK_DEFAULT_* cleared for determinism."""
    with environment_without("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION"):
        yield {name: _synthesize(name, tmp_path_factory.mktemp(f"cdk-{name}")) for name in ENVIRONMENTS}


@pytest.fixture(scope="session")
def dev(synthesized: dict[str, SynthesizedEnv]) -> SynthesizedEnv:
    """The dev environment (HTTP-only trial variant: no domain configured)."""
    return synthesized["dev"]


@pytest.fixture(scope="session")
def prod(synthesized: dict[str, SynthesizedEnv]) -> SynthesizedEnv:
    """The prod environment (HTTPS, ALB JWT and Cognito authentication)."""
    return synthesized["prod"]


@pytest.fixture(scope="session", params=ENVIRONMENTS)
def any_env(request: pytest.FixtureRequest, synthesized: dict[str, SynthesizedEnv]) -> SynthesizedEnv:
    """Each environment in turn, for behaviour that must hold everywhere."""
    return synthesized[request.param]
