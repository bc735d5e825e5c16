"""Builds the two CDK apps: ``app.py`` (one environment's stage) and ``pipeline_app.py`` (the delivery pipeline).

Both get the cdk-nag AwsSolutions checks. The root scripts only call ``build_app`` / ``build_pipeline_app``
and synthesize, so tests build exactly what the CDK CLI deploys.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks

from stacks.config import OVERRIDABLE_KEYS, load_config
from stacks.pipeline import PIPELINE_STACK_ID, PipelineStack
from stacks.pipeline_config import PIPELINE_OVERRIDABLE_KEYS, load_pipeline_config
from stacks.stage import MicroservicesStage, stage_id


def build_app(
    *,
    context: Mapping[str, Any] | None = None,
    outdir: str | None = None,
    nag: bool | None = None,
    validation: bool | None = None,
) -> tuple[App, MicroservicesStage]:
    """Create the app with one ``MicroservicesStage``; the environment comes from context ``env``.

    ``nag`` None means: run cdk-nag unless context ``nag`` is ``false``.

    The region is the config's ``region`` (``-c region=...`` overrides it), never ``CDK_DEFAULT_REGION``: the
    CDK CLI sets that to us-east-1 when the profile has no region, which would silently target another region
    than the one README, tests and .cfnlintrc.yaml assume. The account comes from ``CDK_DEFAULT_ACCOUNT``;
    without one the stacks are account-agnostic (no AZ look-ups), which is how tests and CI synthesize.
    """
    app = new_app(context=context, outdir=outdir, validation=validation)
    config = load_config(
        app.node.try_get_context("env"),
        {key: app.node.try_get_context(key) for key in OVERRIDABLE_KEYS},
    )
    env = Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
        region=config.region,
    )
    stage = MicroservicesStage(app, stage_id(config.name), config=config, env=env)
    attach_nag(app, nag)
    return app, stage


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
