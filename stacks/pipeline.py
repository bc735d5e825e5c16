"""PipelineStack: continuous delivery with a self-mutating CDK Pipelines ``CodePipeline``.

Source (a CodeConnections/CodeStar connection to the repository) → Build (install, unit and infra tests,
``cdk synth``) → UpdatePipeline (self-mutation) → Assets (files and the Docker images, built in CodeBuild) →
per ``DeploymentTarget`` of ``PipelineConfig``, in order (dev deploys at once; prod after a manual approval),
its environment's stamps in waves: the first stamp, then the others together in one wave, each stamp followed
by the smoke test ``scripts/smoke_test.py`` against its gateway, then the geode (Route 53) once every stamp is
up. A failed execution (and an approval waiting) notifies the pipeline's SNS topic.

The stages are ``MicroservicesStage``, the very class a developer deploys with ``cdk deploy``.

(Over 250 lines because the pipeline is one CDK construct tree: source, synth, stages, notifications.)
"""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import Duration, Environment, Stack, pipelines
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from stacks.auth import smoke_test_role_name
from stacks.geode import GeodeStage, geode_stack_name
from stacks.nag import acknowledge_pipeline_findings
from stacks.pipeline_config import DeploymentTarget, PipelineConfig
from stacks.stage import MicroservicesStage, stage_id
from stacks.stamps import stamp_configs

PIPELINE_STACK_ID = "Movies-Pipeline"
REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_IMAGE = codebuild.LinuxBuildImage.STANDARD_7_0
"""Ubuntu 22.04 CodeBuild image with Python 3.11 and Node.js 20, the versions the project is tested with."""
RUNTIME_VERSIONS = {"python": "3.11", "nodejs": "20"}
QEMU_BINFMT_IMAGE = (
    "tonistiigi/binfmt:qemu-v10.2.3@sha256:400a4873b838d1b89194d982c45e5fb3cda4593fbfd7e08a02e76b03b21166f0"
)
"""Registers QEMU emulators so the x86_64 CodeBuild host can build the ARM64 (Graviton) images; pinned by
tag and digest like the Dockerfiles' base images (it runs privileged)."""
SMOKE_TEST_WAIT_SECONDS = 300
"""How long the smoke test retries ``/health`` after a deployment (new tasks may still be registering)."""


def pinned_cdk_cli_version() -> str:
    """The CDK CLI version pinned in package.json: self-mutation deploys with the CLI the synth step used."""
    package = json.loads((REPO_ROOT / "package.json").read_text())
    return package["devDependencies"]["aws-cdk"]


SYNTH_INSTALL_COMMANDS = [
    "npm ci",
    "python -m venv .venv",
    ".venv/bin/pip install --quiet -r requirements.txt -r requirements-dev.txt -r services/requirements.txt",
]
SYNTH_COMMANDS = [
    # Unit and CDK tests only: the integration and e2e tests need PostgreSQL, RabbitMQ and the services.
    ".venv/bin/python -m pytest tests/unit tests/infra -q -p no:cacheprovider",
    'npx cdk synth --quiet -a ".venv/bin/python pipeline_app.py"',
]


class PipelineStack(Stack):
    """The delivery pipeline of the movies system (lives in the tooling account of ``PipelineConfig``)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: PipelineConfig, **kwargs) -> None:
        super().__init__(
            scope,
            construct_id,
            env=Environment(account=config.account, region=config.region),
            description="movies: self-mutating CDK Pipelines delivery pipeline",
            **kwargs,
        )
        self.config = config
        # The environment config each target deploys (also decides the asset builds' QEMU set-up).
        self.target_configs = {target.name: target.environment_config(config.account) for target in config.targets}

        self.source = pipelines.CodePipelineSource.connection(
            config.repository,
            config.branch,
            connection_arn=config.connection_arn,
            trigger_on_push=True,
        )
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            pipeline_name=config.pipeline_name,
            pipeline_type=codepipeline.PipelineType.V2,
            synth=self._synth_step(),
            self_mutation=True,
            cli_version=pinned_cdk_cli_version(),
            # Docker is needed to build the image assets (the asset steps get privileged CodeBuild on their
            # own); synth only copies the build contexts and self-mutation only deploys this stack.
            docker_enabled_for_synth=False,
            docker_enabled_for_self_mutation=False,
            docker_credentials=self._docker_credentials(),
            cross_account_keys=config.needs_cross_account_keys,
            enable_key_rotation=config.needs_cross_account_keys,
            code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=codebuild.BuildEnvironment(build_image=BUILD_IMAGE),
                partial_build_spec=codebuild.BuildSpec.from_object(
                    {"phases": {"install": {"runtime-versions": RUNTIME_VERSIONS}}}
                ),
            ),
            asset_publishing_code_build_defaults=self._asset_publishing_options(),
        )

        self.topic = self._notification_topic()
        self.stages: dict[str, MicroservicesStage] = {}
        self.geodes: dict[str, GeodeStage] = {}
        for target in config.targets:
            self._deploy_target(target)

        # Build now (instead of at synth) so the underlying CodePipeline can get notifications and nag
        # acknowledgements.
        self.pipeline.build_pipeline()
        self._tidy_template()
        self._notify_on_failure()
        acknowledge_pipeline_findings(self)

    def _deploy_target(self, target: DeploymentTarget) -> None:
        """A target's stamps in waves: the first stamp (after the approval, if any) and its smoke test; then
        every other stamp in one wave (in parallel, each with its smoke test); then the geode, once every stamp
        it routes to is there (docs/stamps-and-geode.md, "Deploying stamps in waves")."""
        config = self.target_configs[target.name]
        first, *others = stamp_configs(config)
        stage = MicroservicesStage(
            self, stage_id(first.name), config=first, env=Environment(account=target.account, region=target.region)
        )
        self.stages[first.name] = stage
        pre: list[pipelines.Step] = []
        if target.requires_approval:
            pre.append(
                pipelines.ManualApprovalStep(
                    "Approve",
                    comment=f"Deploy to {target.name} ({target.account}, {target.region}) and its other stamps? "
                    "The previous stage passed its smoke test.",
                    notification_topic=self.topic,
                )
            )
        self.pipeline.add_stage(stage, pre=pre, post=[self._smoke_test_step(target, stage, stage)])
        if others:
            wave = self.pipeline.add_wave(f"{stage_id(target.name)}-stamps")
            for stamp_config in others:
                account = stamp_config.current_stamp.account or target.account
                other = MicroservicesStage(
                    self,
                    stage_id(stamp_config.name),
                    config=stamp_config,
                    env=Environment(account=account, region=stamp_config.region),
                )
                self.stages[stamp_config.name] = other
                # Same smoke test; the token comes from the first stamp's pool, which every stamp accepts.
                wave.add_stage(other, post=[self._smoke_test_step(target, other, stage)])
        if config.geode:
            geode = GeodeStage(self, geode_stack_name(config), config=config, account=target.account)
            self.geodes[target.name] = geode
            self.pipeline.add_stage(geode)

    # --- steps -----------------------------------------------------------------------------------------
    def _synth_step(self) -> pipelines.CodeBuildStep:
        """Install, test, synthesize: a red test stops the pipeline before anything is deployed."""
        return pipelines.CodeBuildStep(
            "Synth",
            input=self.source,
            install_commands=SYNTH_INSTALL_COMMANDS,
            commands=SYNTH_COMMANDS,
            primary_output_directory="cdk.out",
            # The infra tests and the synth each start a jsii runtime and synthesize several apps.
            build_environment=codebuild.BuildEnvironment(
                build_image=BUILD_IMAGE, compute_type=codebuild.ComputeType.MEDIUM
            ),
            timeout=Duration.minutes(30),
        )

    def _smoke_test_step(
        self, target: DeploymentTarget, stage: MicroservicesStage, first: MicroservicesStage
    ) -> pipelines.CodeBuildStep:
        """``scripts/smoke_test.py`` against the freshly deployed ``stage``, with a client-credentials token of the
        environment's user pool (in ``first``, the first stamp's stage, deployed before).

        The client secret is read from Cognito at run time through the target account's smoke-test role
        (``AuthStack``), which may do exactly that; this project's role may assume exactly that role.
        """
        auth = first.auth
        role_arn = self.format_arn(
            service="iam",
            region="",
            account=target.account,
            resource="role",
            resource_name=smoke_test_role_name(auth.stack_name, target.region),
        )
        if auth.smoke_test_role_output is None:
            raise ValueError(f"stage {first.stage_name} does not trust the pipeline account for its smoke test")
        return pipelines.CodeBuildStep(
            "SmokeTest",
            input=self.source,
            env_from_cfn_outputs={
                "API_URL": stage.compute.api_url_output,
                "TOKEN_URL": auth.token_endpoint_output,
                "MACHINE_CLIENT_ID": auth.machine_client_id_output,
                "USER_POOL_ID": auth.user_pool_id_output,
                "SMOKE_TEST_ROLE_ARN": auth.smoke_test_role_output,
            },
            commands=[
                # A CLI profile that assumes the target's role from the CodeBuild container credentials; the
                # secret goes from the CLI straight into the script, never into a variable or the log.
                'aws configure set profile.target.role_arn "$SMOKE_TEST_ROLE_ARN"',
                "aws configure set profile.target.credential_source EcsContainer",
                "AWS_PROFILE=target python3 scripts/smoke_test.py"
                ' --url "$API_URL" --token-url "$TOKEN_URL" --client-id "$MACHINE_CLIENT_ID"'
                f' --user-pool-id "$USER_POOL_ID" --wait {SMOKE_TEST_WAIT_SECONDS}',
            ],
            role_policy_statements=[iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[role_arn])],
            timeout=Duration.minutes(15),
        )

    def _asset_publishing_options(self) -> pipelines.CodeBuildOptions | None:
        """Asset builds: QEMU when any target runs on ARM64 (the CodeBuild host is x86_64)."""
        if not any(config.cpu_architecture == "ARM64" for config in self.target_configs.values()):
            return None
        return pipelines.CodeBuildOptions(
            partial_build_spec=codebuild.BuildSpec.from_object(
                {
                    "env": {"variables": {"DOCKER_BUILDKIT": "1"}},
                    "phases": {
                        "install": {"commands": [f"docker run --privileged --rm {QEMU_BINFMT_IMAGE} --install arm64"]}
                    },
                }
            )
        )

    def _docker_credentials(self) -> list[pipelines.DockerCredential] | None:
        """Docker Hub login for image builds when configured (anonymous pulls are rate-limited per IP)."""
        if not self.config.docker_hub_secret_name:
            return None
        secret = secretsmanager.Secret.from_secret_name_v2(self, "DockerHubSecret", self.config.docker_hub_secret_name)
        return [pipelines.DockerCredential.docker_hub(secret)]

    def _tidy_template(self) -> None:
        """Two cosmetic fixes of CDK Pipelines' output, so cfn-lint passes without ignored checks.

        * The CloudFormation actions' ``RoleArn`` (the targets' CDK execution roles) is written as
          ``Fn::Join`` around ``AWS::Partition``, which cfn-lint cannot validate (E3703); the partition is
          known here (``@aws-cdk/core:enablePartitionLiterals``), so the ARN becomes a literal.
        * The pipeline ``DependsOn`` its role, which its ``RoleArn`` already implies (W3005).
        """
        cfn_pipeline = self.pipeline.pipeline.node.default_child
        stages = self.resolve(cfn_pipeline.stages)
        partition_join_prefix = ["arn:", {"Ref": "AWS::Partition"}]
        for i, stage in enumerate(stages):
            for j, action in enumerate(stage["actions"]):
                role_arn = (action.get("configuration") or {}).get("RoleArn")
                if isinstance(role_arn, dict) and "Fn::Join" in role_arn:
                    delimiter, parts = role_arn["Fn::Join"]
                    if delimiter == "" and parts[:2] == partition_join_prefix and len(parts) == 3:
                        cfn_pipeline.add_property_override(
                            f"Stages.{i}.Actions.{j}.Configuration.RoleArn", f"arn:{self.partition}{parts[2]}"
                        )
        role_policy = self.pipeline.pipeline.role.node.find_child("DefaultPolicy").node.default_child
        cfn_pipeline.add_override("DependsOn", [self.get_logical_id(role_policy)])

    # --- notifications ---------------------------------------------------------------------------------
    def _notification_topic(self) -> sns.Topic:
        """The pipeline's own encrypted topic, subscribed to the notification e-mail.

        Not the monitoring stack's alarm topic: that lives in each target's stage (another account and
        region, deployed *by* this pipeline), and a pipeline stack cannot reference resources of the stages
        it deploys. The same e-mail address subscribes to both.
        """
        key = kms.Key(self, "NotificationKey", enable_key_rotation=True, description="Pipeline notifications")
        # EventBridge publishes the failure events; the key must let it encrypt them.
        key.grant(iam.ServicePrincipal("events.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        topic = sns.Topic(self, "NotificationTopic", master_key=key, enforce_ssl=True)
        if self.config.notification_email:
            topic.add_subscription(subscriptions.EmailSubscription(self.config.notification_email))
        return topic

    def _notify_on_failure(self) -> None:
        """An EventBridge rule: any failed pipeline execution → the notification topic."""
        pipeline = self.pipeline.pipeline
        pipeline.on_state_change(
            "ExecutionFailed",
            description=f"{self.config.pipeline_name}: a pipeline execution failed",
            event_pattern=events.EventPattern(detail={"state": ["FAILED"]}),
            target=events_targets.SnsTopic(
                self.topic,
                message=events.RuleTargetInput.from_text(
                    f"Pipeline {events.EventField.from_path('$.detail.pipeline')} execution "
                    f"{events.EventField.from_path('$.detail.execution-id')} FAILED in "
                    f"{events.EventField.from_path('$.region')}. Open "
                    f"https://console.aws.amazon.com/codesuite/codepipeline/pipelines/"
                    f"{events.EventField.from_path('$.detail.pipeline')}/view"
                ),
            ),
        )
