"""FargateMicroservice: one of the three Python services on ECS Fargate, built from the shared Dockerfile."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from contract import environment as var
from contract.services import Service
from stacks.components.telemetry import AdotSidecar, tracing_environment
from stacks.config import ServiceSizing

REPO_ROOT = Path(__file__).resolve().parents[2]
"""Docker build context of every service image: the repository root, narrowed by its .dockerignore allowlist
(contract/ and services/ only), because each image carries the contract package next to its service."""
DOCKERFILE = "services/Dockerfile"
"""The one Dockerfile of all services (relative to ``REPO_ROOT``); ``ARG SERVICE`` selects the service."""

# Never send local state or caches to the Docker build context (and so into cdk.out and the asset hash), even
# if the .dockerignore allowlist is loosened: they are excluded here as well.
ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/.pytest_cache", "**/.ruff_cache", "**/.venv", "**/.run"]

ARCHITECTURES = {
    "ARM64": (ecs.CpuArchitecture.ARM64, ecr_assets.Platform.LINUX_ARM64),
    "X86_64": (ecs.CpuArchitecture.X86_64, ecr_assets.Platform.LINUX_AMD64),
}


def image_of(service: Service, platform: ecr_assets.Platform) -> ecs.ContainerImage:
    """The container image asset of ``service``: ``services/Dockerfile`` built with its name and port."""
    return ecs.ContainerImage.from_asset(
        directory=str(REPO_ROOT),
        file=DOCKERFILE,
        build_args={"SERVICE": service.name, "PORT": str(service.port)},
        platform=platform,
        exclude=ASSET_EXCLUDES,
    )


def process_settings(service: Service, sizing: ServiceSizing) -> dict[str, str]:
    """The process environment of ``service``: port, log level and the gunicorn process model.

    GUNICORN_WORKERS is left out for a ``single_worker`` service (billing): the service enforces one worker
    itself (contract.services), so no deployment can set another number.
    """
    if service.single_worker and sizing.gunicorn_workers is not None:
        raise ValueError(f"{service.name} runs exactly one worker (contract.services): leave gunicorn_workers unset")
    settings = {var.PORT.name: str(service.port), var.LOG_LEVEL.name: "INFO"}
    if sizing.gunicorn_workers is not None:
        settings[var.GUNICORN_WORKERS.name] = str(sizing.gunicorn_workers)
    settings[var.GUNICORN_THREADS.name] = str(sizing.gunicorn_threads)
    return settings


class FargateMicroservice(Construct):
    """An ECS Fargate service for one microservice, secure by default.

    It owns the task definition (separate task and execution roles; the task role starts empty), the
    container (image asset from ``services/Dockerfile`` with ``SERVICE=<name>``, read-only root file system with a
    writable ``/tmp``, health check on ``/health``), a log group with retention, Service Connect
    registration or client configuration, and the scalable task count. No credential is in the task
    definition: the service reads ``readable_secrets`` from Secrets Manager itself (their ARNs are in
    ``environment``), re-reading them after a rotation; only the task role may read them. A key that is never
    rotated (the gateway's order-id key) is ``injected_secrets`` instead: ECS puts it into the container's
    environment at start, and only the execution role may read it. ``environment`` is for non-secret
    configuration only.

    ``service`` (from ``contract.services``) gives the image, the name and port; ``name`` renames the container
    and its log streams when one image runs as two services (``billing-express``). ``service_connect`` is ``"server"``
    (other tasks reach it as ``http://<name>:<port>``),
    ``"client"`` (it may call servers) or None (no Service Connect). ``trace_sampling_ratio``: the share of
    new traces kept; set, the task gets the ADOT collector sidecar (``components.telemetry``) and the app
    exports its spans to it; None: tracing off.

    Networking is decided by the caller: ``security_group`` is created by the network stack so that the
    data stack can reference it without a dependency cycle.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        service: Service,
        cluster: ecs.ICluster,
        security_group: ec2.ISecurityGroup,
        sizing: ServiceSizing,
        cpu_architecture: str,
        log_retention: logs.RetentionDays,
        environment: Mapping[str, str],
        readable_secrets: Sequence[secretsmanager.ISecret] = (),
        injected_secrets: Mapping[str, ecs.Secret] | None = None,
        use_spot: bool = False,
        service_connect: str | None = None,
        health_check_grace_period: Duration | None = None,
        name: str | None = None,
        trace_sampling_ratio: float | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        # A second deployment of one service's image (billing's express consumer) gets a name of its own.
        service_name, port = name or service.name, service.port
        self.port = port
        cpu_arch, platform = ARCHITECTURES[cpu_architecture]

        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )

        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "TaskDefinition",
            cpu=sizing.cpu,
            memory_limit_mib=sizing.memory_mib,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=cpu_arch, operating_system_family=ecs.OperatingSystemFamily.LINUX
            ),
        )
        # The root file system is read-only; gunicorn's heartbeat files and the Prometheus multiprocess
        # directory need a writable scratch space, provided as a task-local volume.
        self.task_definition.add_volume(name="tmp")

        self.container = self.task_definition.add_container(
            "app",
            container_name=service_name,
            image=image_of(service, platform),
            essential=True,
            readonly_root_filesystem=True,
            environment={
                **process_settings(service, sizing),
                **(tracing_environment(trace_sampling_ratio) if trace_sampling_ratio is not None else {}),
                **environment,
            },
            secrets=dict(injected_secrets) if injected_secrets else None,
            port_mappings=[
                ecs.PortMapping(
                    name="http", container_port=port, protocol=ecs.Protocol.TCP, app_protocol=ecs.AppProtocol.http
                )
            ],
            logging=ecs.LogDriver.aws_logs(stream_prefix=service_name, log_group=self.log_group),
            health_check=ecs.HealthCheck(
                command=["CMD", "python", "-m", "common.healthcheck", f"http://127.0.0.1:{port}/health"],
                interval=Duration.seconds(30),
                timeout=Duration.seconds(5),
                retries=3,
                start_period=Duration.seconds(60),
            ),
            stop_timeout=Duration.seconds(30),
        )
        if readable_secrets:
            # GetSecretValue only (any version stage: the services fall back to AWSPENDING mid-rotation), on
            # exactly these secrets. They use the AWS-managed Secrets Manager key, so no kms:Decrypt grant.
            self.task_definition.add_to_task_role_policy(
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[secret.secret_arn for secret in readable_secrets],
                )
            )
        self.container.add_mount_points(
            ecs.MountPoint(container_path="/tmp", source_volume="tmp", read_only=False)  # noqa: S108
        )
        self.telemetry: AdotSidecar | None = None
        if trace_sampling_ratio is not None:
            self.telemetry = AdotSidecar(
                self,
                "Telemetry",
                task_definition=self.task_definition,
                service_name=service_name,
                port=port,
                log_group=self.log_group,
                log_retention=log_retention,
            )

        # "server": reachable by other tasks as http://<service_name>:<port>; "client": may call servers.
        service_connect_props = None
        if service_connect is not None:
            service_connect_props = ecs.ServiceConnectProps(
                services=[ecs.ServiceConnectService(port_mapping_name="http", dns_name=service_name, port=port)]
                if service_connect == "server"
                else None,
                log_driver=ecs.LogDriver.aws_logs(
                    stream_prefix=f"{service_name}-service-connect", log_group=self.log_group
                ),
            )
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=cluster,
            task_definition=self.task_definition,
            desired_count=sizing.min_tasks,
            assign_public_ip=False,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=[security_group],
            capacity_provider_strategies=self._capacity(use_spot),
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            min_healthy_percent=100,
            max_healthy_percent=200,
            service_connect_configuration=service_connect_props,
            health_check_grace_period=health_check_grace_period,
            enable_execute_command=False,
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
        )
        self.scaling = self.service.auto_scale_task_count(min_capacity=sizing.min_tasks, max_capacity=sizing.max_tasks)

    @property
    def connections(self) -> ec2.Connections:
        """Network connections of the service's tasks."""
        return self.service.connections

    @staticmethod
    def _capacity(use_spot: bool) -> Sequence[ecs.CapacityProviderStrategy]:
        if use_spot:
            return [ecs.CapacityProviderStrategy(capacity_provider="FARGATE_SPOT", weight=1)]
        return [ecs.CapacityProviderStrategy(capacity_provider="FARGATE", weight=1)]
