"""Builds the two CDK apps: ``app.py`` (one environment's stage) and ``pipeline_app.py`` (the delivery pipeline).

Both get the cdk-nag AwsSolutions checks. The root scripts only call ``build_app`` / ``build_pipeline_app``
and synthesize, so tests build exactly what the CDK CLI deploys.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_cdk import App, Environment, Stack, Validations
from cdk_nag import AwsSolutionsChecks

from stacks.config import OVERRIDABLE_KEYS, EnvironmentConfig, load_config
from stacks.geode import GEODE_STACK_ID, GeodeStage, geode_stack_name
from stacks.pipeline import PIPELINE_STACK_ID, PipelineStack
from stacks.pipeline_config import PIPELINE_OVERRIDABLE_KEYS, load_pipeline_config
from stacks.stage import MicroservicesStage, stage_id
from stacks.stamps import stamp_configs


def build_app(
    *,
    context: Mapping[str, Any] | None = None,
    outdir: str | None = None,
    nag: bool | None = None,
    validation: bool | None = None,
) -> tuple[App, MicroservicesStage]:
    """Create the app of one environment (context ``env``) and return it with its FIRST stamp's stage (the
    environment as it was before stamps: ``Movies-<env>``); ``build_environment_app`` returns every stage.

    ``nag`` None means: run cdk-nag unless context ``nag`` is ``false``.

    The region is the config's ``region`` (``-c region=...`` overrides it), never ``CDK_DEFAULT_REGION``: the
    CDK CLI sets that to us-east-1 when the profile has no region, which would silently target another region
    than the one README, tests and .cfnlintrc.yaml assume. The account comes from ``CDK_DEFAULT_ACCOUNT``;
    without one the stacks are account-agnostic (no AZ look-ups), which is how tests and CI synthesize.
    """
    app, deployment = build_environment_app(context=context, outdir=outdir, nag=nag, validation=validation)
    return app, deployment.stamps[0]


@dataclass(frozen=True)
class EnvironmentDeployment:
    """Everything one environment deploys: a ``MicroservicesStage`` per stamp (first stamp first) and the geode."""

    config: EnvironmentConfig
    stamps: list[MicroservicesStage]
    geode: GeodeStage | None

    @property
    def stacks_by_stamp(self) -> dict[str, list[Stack]]:
        """The stacks of each stamp by stamp name, and the geode's under ``GEODE_STACK_ID`` (cost, tests)."""
        found: dict[str, list[Stack]] = {stage.config.current_stamp.name: stage.stacks for stage in self.stamps}
        if self.geode:
            found[GEODE_STACK_ID] = self.geode.stacks
        return found


def build_environment_app(
    *,
    context: Mapping[str, Any] | None = None,
    outdir: str | None = None,
    nag: bool | None = None,
    validation: bool | None = None,
) -> tuple[App, EnvironmentDeployment]:
    """Like ``build_app``, with every stamp of the environment (``Movies-<env>`` first, then
    ``Movies-<env>-<stamp>`` in each stamp's region) and the geode stage (``Movies-<env>-Geode``, us-east-1)."""
    app = new_app(context=context, outdir=outdir, validation=validation)
    config = load_config(
        app.node.try_get_context("env"),
        {key: app.node.try_get_context(key) for key in OVERRIDABLE_KEYS},
    )
    account = os.environ.get("CDK_DEFAULT_ACCOUNT")
    stamps = [
        MicroservicesStage(
            app,
            stage_id(stamp.name),
            config=stamp,
            env=Environment(account=stamp.current_stamp.account or account, region=stamp.region),
        )
        for stamp in stamp_configs(config)
    ]
    geode = GeodeStage(app, geode_stack_name(config), config=config, account=account) if config.geode else None
    attach_nag(app, nag)
    return app, EnvironmentDeployment(config, stamps, geode)


def build_pipeline_app(
    *,
    context: Mapping[str, Any] | None = None,
    outdir: str | None = None,
    nag: bool | None = None,
    validation: bool | None = None,
) -> tuple[App, PipelineStack]:
    """Create the app with the ``Movies-Pipeline`` stack; ``nag`` None: on unless context ``nag`` is ``false``.

    Account and region of the pipeline and of every stage are explicit (``PIPELINE`` in
    stacks/pipeline_config.py), so the availability zones of the target accounts come from the committed
    ``cdk.context.json``.
    """
    app = new_app(context=context, outdir=outdir, validation=validation)
    config = load_pipeline_config({key: app.node.try_get_context(key) for key in PIPELINE_OVERRIDABLE_KEYS})
    stack = PipelineStack(app, PIPELINE_STACK_ID, config=config)
    attach_nag(app, nag)
    return app, stack


def new_app(
    *, context: Mapping[str, Any] | None = None, outdir: str | None = None, validation: bool | None = None
) -> App:
    """An ``App`` with ``context`` (copied), ``outdir`` and the built-in CloudFormation validation setting."""
    return App(context=dict(context or {}), outdir=outdir, builtin_cloud_formation_validation=validation)


def attach_nag(app: App, nag: bool | None = None) -> None:
    """Add the cdk-nag AwsSolutions checks to ``app``; ``nag`` None: on unless context ``nag`` is ``false``.

    cdk-nag 3 is a validation plugin: any unacknowledged finding fails synthesis.
    """
    if nag is None:
        nag = str(app.node.try_get_context("nag")).lower() != "false"
    if nag:
        Validations.of(app).add_plugins(AwsSolutionsChecks(app))
