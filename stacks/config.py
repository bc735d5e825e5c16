"""Typed, per-environment configuration of the CDK application.

(Over 250 lines: two literal environment configs next to the dataclass they fill; splitting them apart would
hide which field means what.)

Everything that differs between ``dev`` and ``prod`` lives here, in one frozen dataclass per environment,
so that stacks never branch on the environment *name*: they read a field. Choose the environment with
``cdk synth -c env=dev|prod`` (default ``dev``). A few deployment-specific keys (region, domain, hosted zone,
certificate, alarm e-mail and HTTPS endpoint, budget) can be overridden with ``-c key=value`` without editing
this file; see ``OVERRIDABLE_KEYS``. The delivery pipeline's own settings are in ``stacks/pipeline_config.py``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk.aws_logs import RetentionDays

from contract.shards import MAX_SHARDS
from stacks.stamp_config import DEFAULT_STAMP, GeodeConfig, OutsideChecksConfig, Stamp, validate_stamps

DEFAULT_ENV = "dev"
#: Each environment's monthly AWS Budget in USD: its maximum-scale cost from ``make cost`` plus a margin, written
#: by ``make cost-budgets`` (cost/budgets.py), never typed by hand; ``-c monthly_budget_usd=N`` still overrides.
DERIVED_BUDGETS: dict[str, int] = json.loads(Path(__file__).with_name("budgets.json").read_text())


@dataclass(frozen=True)
class ServiceSizing:
    """Fargate task size, task-count bounds and the gunicorn process model sized for that CPU."""

    cpu: int
    """Task CPU units (256 = 0.25 vCPU)."""
    memory_mib: int
    min_tasks: int
    max_tasks: int
    gunicorn_threads: int
    gunicorn_workers: int | None = None
    """None for a ``single_worker`` service (billing): it enforces its one worker itself (contract.services)."""


@dataclass(frozen=True)
class RateLimitConfig:
    """Per-caller throttling at the gateway, its store's ceilings, and billing's write budget."""

    reads_per_second: float = 20
    """RATE_LIMIT_READS_PER_SECOND per caller (GET/HEAD/OPTIONS); 0: unlimited."""
    writes_per_second: float = 5
    """RATE_LIMIT_WRITES_PER_SECOND per caller; 0: unlimited."""
    burst: int = 40
    """RATE_LIMIT_BURST: requests a caller may send at once, per class."""
    cache_max_data_gb: int = 1
    """ElastiCache Serverless storage ceiling (one small hash per active caller and class)."""
    cache_max_ecpu_per_second: int = 5000
    """ElastiCache Serverless ECPU/s ceiling (about one per request): a cost cap; above it requests pass."""
    billing_max_rows_per_second: float = 500
    """BILLING_MAX_ROWS_PER_SECOND per billing task: the pace at which a backlog drains."""


@dataclass(frozen=True)
class EnvironmentConfig:
    """All environment-specific settings of one deployment of the system."""

    name: str
    """Short environment name (``dev`` / ``prod``); part of stage, stack and resource names."""

    region: str
    """The region this environment deploys to: authoritative (the CDK CLI's CDK_DEFAULT_REGION, us-east-1 when
    no profile region is set, is ignored); override with ``-c region=...``. The account may stay unknown,
    which keeps synthesis free of AZ look-ups."""

    # --- network -------------------------------------------------------------------------------------
    vpc_cidr: str
    max_azs: int
    nat_gateways: int
    """1 NAT gateway is cheap but makes egress depend on one AZ; prod has one per AZ."""
    vpc_interface_endpoints: bool
    """Interface endpoints (ECR api/dkr, CloudWatch Logs, Secrets Manager, SQS) keep AWS API traffic off the NAT
    gateways and keep tasks working if a NAT fails, at ~USD 7.3 per endpoint per AZ per month."""

    # --- logs ----------------------------------------------------------------------------------------
    log_retention: RetentionDays
    """Retention of the application and VPC flow log groups."""

    # --- data ----------------------------------------------------------------------------------------
    db_instance_type: str
    db_multi_az: bool
    db_allocated_storage_gib: int
    db_max_allocated_storage_gib: int
    db_backup_retention_days: int
    db_deletion_protection: bool
    retain_data_on_delete: bool
    """True: RDS snapshots / retained user pool and log bucket when a stack is deleted (prod)."""
    secret_rotation_days: int
    """Rotation period of the two database secrets and of the broker secret."""
    db_performance_insights: bool
    """Performance Insights (7-day retention, free tier) on both instances."""
    db_enhanced_monitoring_seconds: int
    """Enhanced Monitoring interval (0: off); OS metrics go to CloudWatch Logs (RDSOSMetrics)."""
    backup_retention_days: int
    """AWS Backup: daily recovery points of both databases kept this long (on top of RDS automated backups)."""
    backup_copy_region: str | None
    """Region whose vault receives a copy of every recovery point; None: no cross-region copy. The vault
    ``backup_copy_vault_name`` must exist there first (docs/aws-deployment.md, "Backups")."""

    mq_instance_type: str
    mq_engine_version: str
    """RabbitMQ major.minor (patches are applied automatically). 3.13 runs on mq.t3/m5/m7g and matches the
    RabbitMQ used by the local system and tests; 4.2 (mq.m7g only, quorum queues by default) is an in-place
    upgrade once the services have been tested against it."""
    mq_deployment_mode: str
    """``SINGLE_INSTANCE`` or ``CLUSTER_MULTI_AZ`` (the latter needs mq.m5.large / mq.m7g.large or bigger)."""

    # --- auth ----------------------------------------------------------------------------------------
    cognito_mfa_required: bool
    cognito_threat_protection: bool
    """Cognito Plus feature plan with threat protection enforced (paid per MAU)."""

    # --- compute -------------------------------------------------------------------------------------
    cpu_architecture: str
    """``ARM64`` (Graviton, ~20 % cheaper; images are cross-built with buildx/QEMU on x86 hosts) or
    ``X86_64`` (builds natively on common CI runners and laptops)."""
    billing_use_spot: bool
    """Run the billing worker on Fargate Spot: it consumes a durable queue, so an interruption only delays
    processing."""
    inventory: ServiceSizing
    billing: ServiceSizing
    gateway: ServiceSizing
    cpu_target_percent: int
    requests_per_target: int
    """ALB RequestCountPerTarget (per minute) the gateway and inventory scale to."""
    billing_queue_scale_out_depth: int
    """billing_queue messages that add one billing task."""
    billing_express: ServiceSizing
    """The express consumer: billing's image with BILLING_CONSUME=express, scaled on the express queue alone."""
    express_scale_out_depth: int
    """billing.orders.express messages that add one express consumer task."""
    express_scale_out_age_seconds: int
    """Age (s) of the oldest express order billing receives that adds one express consumer task."""

    # --- edge ----------------------------------------------------------------------------------------
    domain_name: str | None
    """Public DNS name of the API (e.g. ``api.example.com``). None: HTTP-only trial variant."""
    hosted_zone_id: str | None
    hosted_zone_name: str | None
    certificate_arn: str | None
    """Existing ACM certificate for ``domain_name``; None: a DNS-validated certificate is created."""
    waf_rate_limit_per_5min: int
    """Requests per client IP in any 5-minute window before the WAF rate-based rule blocks it."""
    access_log_expiry_days: int

    # --- monitoring ----------------------------------------------------------------------------------
    alarm_email: str | None
    monthly_budget_usd: int
    """The AWS Budget's monthly amount (DERIVED_BUDGETS for the environments here)."""
    alarm_https_endpoint: str | None = None
    """PagerDuty / Opsgenie (or any) HTTPS URL subscribed to the alarm topic; None: e-mail only."""
    latency_p99_threshold_seconds: float = 2.0
    queue_backlog_threshold: int = 1000
    express_backlog_threshold: int = 200
    """billing.orders.express messages that page when they stay for 5 minutes."""
    express_age_alarm_seconds: int = 120
    """Express orders older than this when billing receives them page (the express promise is broken)."""
    db_freeable_memory_alarm_mib: int = 128
    """RDS FreeableMemory below this pages (dev: db.t4g.micro has 1 GiB in all)."""
    db_connections_alarm: int = 70
    """DatabaseConnections above this pages: ~80 % of PostgreSQL's default max_connections for the class."""
    trace_sampling_ratio: float | None = 0.05
    """Share of requests traced (OTEL_TRACES_SAMPLER_ARG at the gateway; billing and inventory follow its
    decision). Each task runs the ADOT collector sidecar (traces to X-Ray, metrics to CloudWatch); None: no
    sidecar, tracing off. X-Ray bills per trace recorded: docs/tracing.md has the arithmetic."""

    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)

    billing_shards: int = 1
    """Billing databases the orders are spread over (contract.shards, BILLING_SHARDS): shard 0 is ``billing_db``,
    each shard k >= 1 its own RDS instance sized like it, with its own secret, alarms and dashboard row."""

    tags: Mapping[str, str] = field(default_factory=dict)

    # --- delivery pipeline ---------------------------------------------------------------------------
    smoke_test_trusted_account: str | None = None
    """Account of the CDK Pipelines pipeline that deploys this environment. When set, the auth stack creates
    a role that account may assume to read the machine client's secret for the post-deploy smoke test
    (``scripts/smoke_test.py``). None (developer ``cdk deploy``): no such role."""

    # --- deployment stamps and the geode edge (issue 16) --------------------------------------------------------
    stamps: tuple[Stamp, ...] = ()
    """The environment's stamps, first one first; () means a single stamp ``DEFAULT_STAMP`` in ``region``. The
    first stamp's region is ``region``, the names are unique and the shares sum to 100 (checked on creation)."""
    stamp: str | None = None
    """Set on the config of an ADDITIONAL stamp (stacks/stamps.py): its name. None: the first stamp."""
    environment: str | None = None
    """The environment an additional stamp's config belongs to (its ``name`` is ``<environment>-<stamp>``)."""
    geode: GeodeConfig | None = None
    """The geode edge (needs the HTTPS variant: a hosted zone); None: no global name, no Route 53 checks."""
    outside_checks: OutsideChecksConfig | None = None
    """The Synthetics canary per stamp; None: none."""

    def __post_init__(self) -> None:
        shards = self.billing_shards
        if not 1 <= shards <= MAX_SHARDS:
            raise ValueError(f"{self.name}: billing_shards must be between 1 and {MAX_SHARDS}, got {shards}")
        validate_stamps(self)

    @property
    def all_stamps(self) -> tuple[Stamp, ...]:
        """The stamps of the environment, first one first (a single implicit one when ``stamps`` is empty)."""
        return self.stamps or (Stamp(DEFAULT_STAMP, self.region, 100),)

    @property
    def current_stamp(self) -> Stamp:
        """The stamp this config deploys (the first, unless ``stamp`` names another)."""
        return next(stamp for stamp in self.all_stamps if self.stamp in (None, stamp.name))

    @property
    def environment_name(self) -> str:
        """The environment this config deploys (``prod`` for every stamp of prod)."""
        return self.environment or self.name

    @property
    def registry_path(self) -> str:
        """Root of the environment's SSM parameters (the stamp registry and the shared user pool's ids)."""
        return f"/movies/{self.environment_name}"

    @property
    def prefix(self) -> str:
        """Prefix for the few physical names AWS requires (broker, Cognito domain)."""
        return f"movies-{self.name}"

    @property
    def backup_copy_vault_name(self) -> str:
        """Name of the vault in ``backup_copy_region`` that receives the copies (created there beforehand)."""
        return f"{self.prefix}-backup-copy"

    def poster_uploads_bucket_name(self, account: str, region: str) -> str:
        """Physical name of the poster uploads bucket (``PosterPipelineStack``), which inventory's task role and
        the web origin's CSP name in the compute stack, deployed before it: one function for both stacks, so
        the names cannot drift apart, and no reference from compute to the later stack (docs/aws-deployment.md,
        "The web edge")."""
        return f"{self.prefix}-poster-uploads-{account}-{region}"

    def saga_bucket_name(self, account: str, region: str) -> str:
        """Physical name of the saga's bucket of invoices and claim checks (data stack): the compute and invoicer
        stacks name it in their settings and grants by this name, so their policies hold plain ARNs of its
        prefixes (reviewable, acknowledgeable) rather than cross-stack exports."""
        return f"{self.prefix}-invoices-{account}-{region}"

    def web_bucket_name(self, account: str, region: str) -> str:
        """Physical name of the web content bucket (compute stack), where ``publish`` (poster pipeline stack)
        writes ``posters/``: by name, so the filter's grant is a plain ARN rather than a cross-stack export."""
        return f"{self.prefix}-web-{account}-{region}"

    def poster_queue_name(self, queue: str) -> str:
        """Physical name of a poster pipeline queue (``contract.posters`` pipe or dead-letter queue name),
        unique per environment."""
        return f"{self.prefix}-{queue}"

    def poster_function_name(self, filter_name: str) -> str:
        """Physical name of a poster filter Lambda (``contract.posters.FILTERS`` key); the alarms name it."""
        return f"{self.prefix}-poster-{filter_name}"

    @property
    def invoicer_function_name(self) -> str:
        """Physical name of the invoicer Lambda (invoicer stack); the alarms name it."""
        return f"{self.prefix}-invoicer"

    @property
    def https_enabled(self) -> bool:
        """Whether the ALB gets an HTTPS listener with JWT / Cognito authentication."""
        return bool(self.domain_name and self.hosted_zone_id and self.hosted_zone_name)

DEV = EnvironmentConfig(
    name="dev",
    region="eu-west-1",
    vpc_cidr="10.10.0.0/16",
    max_azs=2,
    nat_gateways=1,
    vpc_interface_endpoints=False,
    log_retention=RetentionDays.ONE_WEEK,
    db_instance_type="t4g.micro",
    db_multi_az=False,
    db_allocated_storage_gib=20,
    db_max_allocated_storage_gib=50,
    db_backup_retention_days=1,
    db_deletion_protection=False,
    retain_data_on_delete=False,
    secret_rotation_days=30,
    db_performance_insights=False,
    db_enhanced_monitoring_seconds=0,
    backup_retention_days=7,
    backup_copy_region=None,
    mq_instance_type="mq.t3.micro",
    mq_engine_version="3.13",
    # mq.t3.micro only supports a single instance; dev accepts broker downtime during maintenance.
    mq_deployment_mode="SINGLE_INSTANCE",
    cognito_mfa_required=False,
    cognito_threat_protection=False,
    cpu_architecture="X86_64",
    billing_use_spot=True,
    inventory=ServiceSizing(cpu=256, memory_mib=512, min_tasks=1, max_tasks=2, gunicorn_workers=2, gunicorn_threads=4),
    billing=ServiceSizing(cpu=256, memory_mib=512, min_tasks=1, max_tasks=2, gunicorn_threads=4),
    gateway=ServiceSizing(cpu=256, memory_mib=512, min_tasks=1, max_tasks=2, gunicorn_workers=2, gunicorn_threads=4),
    cpu_target_percent=70,
    requests_per_target=1000,
    billing_queue_scale_out_depth=100,
    billing_express=ServiceSizing(cpu=256, memory_mib=512, min_tasks=1, max_tasks=2, gunicorn_threads=4),
    express_scale_out_depth=20,
    express_scale_out_age_seconds=30,
    domain_name=None,
    hosted_zone_id=None,
    hosted_zone_name=None,
    certificate_arn=None,
    waf_rate_limit_per_5min=1000,
    access_log_expiry_days=30,
    alarm_email="alerts@example.com",
    monthly_budget_usd=DERIVED_BUDGETS["dev"],
    # Little traffic: every request traced (X-Ray's free tier is 100,000 traces a month).
    trace_sampling_ratio=1.0,
    billing_shards=1,
    tags={"Project": "movies", "Environment": "dev"},
    # One stamp: a second would double dev's cost (about $200 a month more) to show what prod's templates and
    # the infra tests already show; no geode (dev has no hosted zone). The canary runs: dev is where it is tried.
    stamps=(Stamp("eu", "eu-west-1", 100),),
    outside_checks=OutsideChecksConfig(),
)

PROD = EnvironmentConfig(
    name="prod",
    region="eu-west-1",
    vpc_cidr="10.20.0.0/16",
    max_azs=2,
    nat_gateways=2,
    vpc_interface_endpoints=True,
    log_retention=RetentionDays.THREE_MONTHS,
    db_instance_type="m7g.large",
    db_multi_az=True,
    db_allocated_storage_gib=50,
    db_max_allocated_storage_gib=200,
    db_backup_retention_days=14,
    db_deletion_protection=True,
    retain_data_on_delete=True,
    secret_rotation_days=30,
    db_performance_insights=True,
    db_enhanced_monitoring_seconds=60,
    backup_retention_days=35,
    backup_copy_region="eu-central-1",
    mq_instance_type="mq.m7g.large",
    mq_engine_version="3.13",
    mq_deployment_mode="CLUSTER_MULTI_AZ",
    cognito_mfa_required=True,
    cognito_threat_protection=True,
    cpu_architecture="ARM64",
    billing_use_spot=False,
    inventory=ServiceSizing(
        cpu=1024, memory_mib=2048, min_tasks=2, max_tasks=10, gunicorn_workers=3, gunicorn_threads=8
    ),
    billing=ServiceSizing(cpu=512, memory_mib=1024, min_tasks=2, max_tasks=6, gunicorn_threads=8),
    gateway=ServiceSizing(cpu=1024, memory_mib=2048, min_tasks=2, max_tasks=10, gunicorn_workers=3, gunicorn_threads=8),
    cpu_target_percent=60,
    requests_per_target=600,
    billing_queue_scale_out_depth=100,
    billing_express=ServiceSizing(cpu=512, memory_mib=1024, min_tasks=1, max_tasks=4, gunicorn_threads=8),
    express_scale_out_depth=20,
    express_scale_out_age_seconds=15,
    # Placeholders: override with -c domain_name=... -c hosted_zone_id=... -c hosted_zone_name=...
    domain_name="movies.example.com",
    hosted_zone_id="Z0000000000EXAMPLE",
    hosted_zone_name="example.com",
    certificate_arn=None,
    waf_rate_limit_per_5min=2000,
    access_log_expiry_days=365,
    alarm_email="alerts@example.com",
    monthly_budget_usd=DERIVED_BUDGETS["prod"],
    latency_p99_threshold_seconds=1.0,
    express_age_alarm_seconds=60,
    db_freeable_memory_alarm_mib=1024,  # db.m7g.large: 8 GiB
    db_connections_alarm=650,  # max_connections ~ 800 on 8 GiB
    rate_limit=RateLimitConfig(
        reads_per_second=50, writes_per_second=10, burst=100, cache_max_data_gb=5, cache_max_ecpu_per_second=50000,
        billing_max_rows_per_second=2000,
    ),
    billing_shards=2,
    tags={"Project": "movies", "Environment": "prod"},
    # Two stamps, Europe first (today's stacks, unchanged) and North America; each a full copy of the stacks.
    stamps=(
        Stamp("eu", "eu-west-1", 60),
        Stamp("us", "us-east-1", 40, domain_name="movies-us.example.com", backup_copy_region="us-west-2"),
    ),
    geode=GeodeConfig(api_domain_name="api.example.com"),
    outside_checks=OutsideChecksConfig(),
)

ENVIRONMENTS: dict[str, EnvironmentConfig] = {"dev": DEV, "prod": PROD}

OVERRIDABLE_KEYS = (
    "region",
    "domain_name",
    "hosted_zone_id",
    "hosted_zone_name",
    "certificate_arn",
    "alarm_email",
    "alarm_https_endpoint",
    "monthly_budget_usd",
)
"""Config fields that may be overridden with ``-c key=value`` (an empty string means None)."""


def load_config(env_name: str | None, overrides: Mapping[str, Any] | None = None) -> EnvironmentConfig:
    """Return the config of ``env_name`` (default dev) with the allowed context overrides applied."""
    name = env_name or DEFAULT_ENV
    if name not in ENVIRONMENTS:
        raise ValueError(f"unknown environment {name!r}; expected one of {sorted(ENVIRONMENTS)}")
    config = ENVIRONMENTS[name]
    changes: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if key not in OVERRIDABLE_KEYS or value is None:
            continue
        if key == "monthly_budget_usd":
            changes[key] = int(value)
        elif key == "region":
            changes[key] = str(value) or config.region  # a region is never "none"
            # The first stamp is the environment's region: it moves with it.
            first, *others = config.all_stamps
            changes["stamps"] = (dataclasses.replace(first, region=changes[key]), *others)
        else:
            changes[key] = str(value) or None
    # Overrides that turn the HTTPS variant off (no domain or zone) turn the geode off too: it needs the zone.
    zone = [changes.get(key, getattr(config, key)) for key in ("domain_name", "hosted_zone_id", "hosted_zone_name")]
    if config.geode and not all(zone):
        changes["geode"] = None
    return dataclasses.replace(config, **changes) if changes else config
