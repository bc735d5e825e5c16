"""Builds the pipeline CDK app: the ``PipelineStack`` (with its stages) plus the cdk-nag AwsSolutions checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import App

from stacks.application import attach_nag, new_app
from stacks.config import PIPELINE_OVERRIDABLE_KEYS, load_pipeline_config
from stacks.pipeline import PIPELINE_STACK_ID, PipelineStack


def build_pipeline_app(
    *,
    context: Mapping[str, Any] | None = None,
    outdir: str | None = None,
    nag: bool | None = None,
    validation: bool | None = None,
) -> tuple[App, PipelineStack]:
    """Create the app with the ``Movies-Pipeline`` stack; ``nag`` None: on unless context ``nag`` is ``false``.

    Account and region of the pipeline and of every stage are explicit (``PIPELINE`` in stacks/config.py),
    so the availability zones of the target accounts come from the committed ``cdk.context.json``.
    """
    app = new_app(context=context, outdir=outdir, validation=validation)
    config = load_pipeline_config({key: app.node.try_get_context(key) for key in PIPELINE_OVERRIDABLE_KEYS})
    stack = PipelineStack(app, PIPELINE_STACK_ID, config=config)
    attach_nag(app, nag)
    return app, stack
