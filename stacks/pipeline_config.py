"""Configuration of the delivery pipeline (``pipeline_app.py``, ``stacks/pipeline.py``): source, accounts, targets.

The pipeline re-synthesizes itself from the repository on every push (self-mutation), so its settings must be
committed: edit ``PIPELINE`` below (or set the keys of ``PIPELINE_OVERRIDABLE_KEYS`` in cdk.json's "context").
Values given only with ``-c`` on the command line would be undone by the next self-mutation. What each
deployment runs is an environment of ``stacks/config.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stacks.config import ENVIRONMENTS, EnvironmentConfig, load_config


@dataclass(frozen=True)
class DeploymentTarget:
    """One deployment of the system by the pipeline: an environment config in one account and region.

    The target deploys every deployment stamp of its environment (``stamps`` in stacks/config.py) in waves:
    the first in ``region``, the others in their own regions. A target whose ``name`` differs from its
    ``environment`` (another copy of a whole environment, e.g. a tenant) gets that name as its config name, so
    its stacks (``Movies-<name>-…``) and physical names (``movies-<name>-…``) never clash with another target's.
    """

    name: str
    """Stage name: the pipeline stage is ``Movies-<name>`` and its stacks ``Movies-<name>-<Stack>``."""
    environment: str
    """Base environment config (``dev`` or ``prod``)."""
    account: str
    region: str
    requires_approval: bool = False
    """A manual approval in the pipeline before this target is deployed."""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """Config overrides for this target (keys of ``OVERRIDABLE_KEYS``, e.g. its own ``domain_name``)."""

    def environment_config(self, pipeline_account: str) -> EnvironmentConfig:
        """The environment config this target deploys, trusting ``pipeline_account`` for the smoke test."""
        # The target's region is the first stamp's (the environment's other stamps keep their own regions).
        config = load_config(self.environment, {**self.overrides, "region": self.region})
        changes: dict[str, Any] = {"smoke_test_trusted_account": pipeline_account}
        if self.name != config.name:
            changes.update(name=self.name, tags={**config.tags, "Stamp": self.name})
        return dataclasses.replace(config, **changes)


@dataclass(frozen=True)
class PipelineConfig:
    """The CDK Pipelines pipeline: where the code comes from, where the pipeline lives, what it deploys."""

    repository: str
    """``owner/repo`` of the source repository (GitHub, GitHub Enterprise, Bitbucket or GitLab)."""
    branch: str
    connection_arn: str
    """ARN of the AWS CodeConnections (CodeStar) connection to the repository host, created and confirmed
    once in the console (a connection starts PENDING until a person authorises it)."""
    account: str
    """Tooling account that hosts the pipeline (bootstrap the target accounts with ``--trust`` for it)."""
    region: str
    targets: tuple[DeploymentTarget, ...]
    """Deployed in this order; each target waits for the previous one."""
    notification_email: str | None = None
    """Receives failed-execution and approval-needed notifications (confirm the SNS e-mail)."""
    pipeline_name: str = "movies"
    cross_account_keys: bool | None = None
    """KMS-encrypted artifact bucket usable by other accounts; None: on when a target is in another account."""
    docker_hub_secret_name: str | None = None
    """Secrets Manager secret (``{"username": ..., "secret": ...}``) for Docker Hub logins during image
    builds, against anonymous pull rate limits; None: anonymous pulls."""

    @property
    def needs_cross_account_keys(self) -> bool:
        """Whether the artifact bucket needs a customer-managed KMS key (targets outside the pipeline account)."""
        if self.cross_account_keys is not None:
            return self.cross_account_keys
        return any(target.account != self.account for target in self.targets)


PIPELINE = PipelineConfig(
    # Placeholders: replace with your repository, connection and accounts (docs/continuous-delivery.md).
    repository="example-org/movies",
    branch="main",
    connection_arn="arn:aws:codeconnections:eu-west-1:111111111111:connection/00000000-0000-0000-0000-000000000000",
    account="111111111111",
    region="eu-west-1",
    targets=(
        DeploymentTarget("dev", "dev", account="222222222222", region="eu-west-1"),
        DeploymentTarget("prod", "prod", account="333333333333", region="eu-west-1", requires_approval=True),
        # prod's deployment stamps (eu-west-1 first, then us-east-1) and its geode come from stacks/config.py.
    ),
    notification_email="alerts@example.com",
)

PIPELINE_OVERRIDABLE_KEYS = {
    "pipeline_repository": "repository",
    "pipeline_branch": "branch",
    "pipeline_connection_arn": "connection_arn",
    "pipeline_notification_email": "notification_email",
}
"""Context keys (``cdk.json`` "context") that override ``PIPELINE`` fields."""


def load_pipeline_config(overrides: Mapping[str, Any] | None = None) -> PipelineConfig:
    """``PIPELINE`` with the context overrides of ``PIPELINE_OVERRIDABLE_KEYS`` applied (empty string: None)."""
    changes = {
        PIPELINE_OVERRIDABLE_KEYS[key]: (str(value) or None)
        for key, value in (overrides or {}).items()
        if key in PIPELINE_OVERRIDABLE_KEYS and value is not None
    }
    return validate_pipeline_config(dataclasses.replace(PIPELINE, **changes) if changes else PIPELINE)


def validate_pipeline_config(config: PipelineConfig) -> PipelineConfig:
    """Reject a pipeline config that cannot work (empty source, no or duplicate targets, unknown envs)."""
    if not (config.repository and config.branch and config.connection_arn):
        raise ValueError("pipeline: repository, branch and connection_arn are required")
    names = [target.name for target in config.targets]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"pipeline: targets need unique names, got {names}")
    for target in config.targets:
        if target.environment not in ENVIRONMENTS:
            raise ValueError(f"pipeline target {target.name!r}: unknown environment {target.environment!r}")
    # Every stamp of every target is a stage named after its config: two of one name would be one stage.
    from stacks.stamps import stamp_configs

    stages = [
        stamp.name for target in config.targets for stamp in stamp_configs(target.environment_config(config.account))
    ]
    if len(set(stages)) != len(stages):
        raise ValueError(f"pipeline: the targets' stamps need unique names, got {stages}")
    return config
