"""Every environment variable a service reads: name, default, meaning, and which services read it.

Configuration is environment-only (12-factor). The services read these through ``common.config`` (so a
default is written once, here); the CDK stacks, Compose, the local system and the image checks set them by
these names; the per-service READMEs render their tables from ``variables_of`` (a test keeps them equal).
"""

from __future__ import annotations

from dataclasses import dataclass

from contract import shards as _shards
from contract.messaging import BILLING_QUEUE as _BILLING_QUEUE
from contract.messaging import EXPRESS_QUEUE as _EXPRESS_QUEUE


@dataclass(frozen=True)
class Variable:
    """One environment variable. ``default`` None: required (the service refuses to start without it)."""

    name: str
    default: str | None
    description: str
    secret: bool = False
    """Holds a credential: injected from a secret store on AWS, never printed, never in a template."""

    @property
    def required(self) -> bool:
        """True when the service cannot start without it."""
        return self.default is None


def _var(name: str, default: str | None, description: str, *, secret: bool = False) -> Variable:
    return Variable(name, default, description, secret)


# --- every service (the process: gunicorn, logs, metrics) ------------------------------------------------
PORT = _var("PORT", "8080", "Port to listen on.")
BIND_HOST = _var("BIND_HOST", "0.0.0.0", "Address to listen on (the local system uses 127.0.0.1).")  # noqa: S104
SERVICE_NAME = _var("SERVICE_NAME", "service", "Process name shown by ps and gunicorn.")
LOG_LEVEL = _var("LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR.")
ACCESS_LOG = _var("ACCESS_LOG", "true", "One JSON log line per request (not for /health, /ready, /metrics).")
GUNICORN_WORKERS = _var("GUNICORN_WORKERS", "2", "Worker processes (billing: always 1, see contract.services).")
GUNICORN_THREADS = _var("GUNICORN_THREADS", "8", "Threads per worker (gthread).")
GUNICORN_KEEPALIVE = _var("GUNICORN_KEEPALIVE", "75", "Seconds an idle keep-alive connection is kept (> ALB's 60).")
GUNICORN_TIMEOUT = _var("GUNICORN_TIMEOUT", "30", "Seconds before a silent worker is killed and replaced.")
GUNICORN_GRACEFUL_TIMEOUT = _var(
    "GUNICORN_GRACEFUL_TIMEOUT", "25", "Seconds after SIGTERM for in-flight work before workers are killed."
)
FORWARDED_ALLOW_IPS = _var("FORWARDED_ALLOW_IPS", "127.0.0.1", "Proxies whose X-Forwarded-* headers are trusted.")
PROMETHEUS_MULTIPROC_DIR = _var(
    "PROMETHEUS_MULTIPROC_DIR", "", "Folder for multiprocess metrics; empty: a fresh folder under the temp dir."
)

# --- PostgreSQL (services that own a database) -----------------------------------------------------------
DATABASE_HOST = _var("DATABASE_HOST", "127.0.0.1", "PostgreSQL host.")
DATABASE_PORT = _var("DATABASE_PORT", "5432", "PostgreSQL port.")
DATABASE_NAME = _var("DATABASE_NAME", "", "Database name; empty: the service's own (contract.services).")
DATABASE_USER = _var(
    "DATABASE_USER", "", "Database user; required unless DATABASE_SECRET_ID is set (never a default user).", secret=True
)
DATABASE_PASSWORD = _var("DATABASE_PASSWORD", "", "Database password.", secret=True)
DATABASE_SECRET_ID = _var(
    "DATABASE_SECRET_ID",
    "",
    "Secrets Manager secret (JSON username, password) to log in with instead of DATABASE_USER/PASSWORD; "
    "re-read when a login is refused, so a rotated password is picked up without a restart.",
)
DATABASE_SSLMODE = _var("DATABASE_SSLMODE", "prefer", "libpq sslmode; AWS sets require.")
DATABASE_SSLROOTCERT = _var("DATABASE_SSLROOTCERT", "", "CA bundle for sslmode verify-ca / verify-full.")
DATABASE_POOL_SIZE = _var("DATABASE_POOL_SIZE", "8", "Connections per worker process, at most.")
DATABASE_CONNECT_TIMEOUT = _var("DATABASE_CONNECT_TIMEOUT", "5", "Seconds to wait for a new connection.")

# --- RabbitMQ (publishers and consumers) -----------------------------------------------------------------
RABBITMQ_URL = _var("RABBITMQ_URL", "amqp://127.0.0.1:5672/", "Broker URL without credentials; amqps:// = TLS.")
RABBITMQ_USER = _var("RABBITMQ_USER", "", "Broker user; required unless RABBITMQ_SECRET_ID is set.", secret=True)
RABBITMQ_PASSWORD = _var("RABBITMQ_PASSWORD", "", "Broker password.", secret=True)
RABBITMQ_SECRET_ID = _var(
    "RABBITMQ_SECRET_ID",
    "",
    "Secrets Manager secret (JSON username, password) for the broker; re-read when a login is refused.",
)
RABBITMQ_HEARTBEAT = _var("RABBITMQ_HEARTBEAT", "30", "AMQP heartbeat in seconds (0: off).")
RABBITMQ_CONNECT_TIMEOUT = _var("RABBITMQ_CONNECT_TIMEOUT", "5", "Seconds to wait for the broker.")
BILLING_QUEUE = _var("BILLING_QUEUE", _BILLING_QUEUE.name, "Queue of orders (its dead-letter queue: <name>.dlq).")
BILLING_EXPRESS_QUEUE = _var(
    "BILLING_EXPRESS_QUEUE", _EXPRESS_QUEUE.name, "Queue of express orders (its dead-letter queue: <name>.dlq)."
)

# --- gateway ---------------------------------------------------------------------------------------------
INVENTORY_URL = _var("INVENTORY_URL", "http://127.0.0.1:8080", "Where inventory answers (http://host:port).")
BILLING_URL = _var("BILLING_URL", "http://127.0.0.1:8081", "Where billing answers order-status reads (http://host:port).")
ORDER_ID_KEY = _var(
    "ORDER_ID_KEY",
    "",
    "Key (64+ hex digits) that signs order ids; required when auth is on. Off: a per-process key.",
    secret=True,
)
UPSTREAM_CONNECT_TIMEOUT = _var("UPSTREAM_CONNECT_TIMEOUT", "2", "Seconds to connect to inventory (then 502).")
UPSTREAM_READ_TIMEOUT = _var("UPSTREAM_READ_TIMEOUT", "10", "Seconds to wait for inventory's answer (then 504).")
AUTH_REQUIRED = _var("AUTH_REQUIRED", "true", "false switches authentication off (local experiments only).")
AUTH_ISSUER = _var("AUTH_ISSUER", None, "Token issuer (the Cognito user pool URL); required when auth is on.")
AUTH_JWKS_URL = _var("AUTH_JWKS_URL", "", "Signing keys; empty: <AUTH_ISSUER>/.well-known/jwks.json.")
AUTH_ALLOWED_CLIENT_IDS = _var(
    "AUTH_ALLOWED_CLIENT_IDS", None, "Comma-separated app client ids whose tokens are accepted (when auth is on)."
)
AUTH_SCOPE_PREFIX = _var("AUTH_SCOPE_PREFIX", "", "Prefix of the permission scopes, e.g. movies-api/.")
AUTH_GROUP_PERMISSIONS = _var(
    "AUTH_GROUP_PERMISSIONS", "", "Group to permissions map: group=perm perm;group=perm (contract.permissions)."
)
AUTH_ALB_ARN = _var("AUTH_ALB_ARN", "", "ALB whose signed x-amzn-oidc-data is accepted; empty: none.")
AUTH_ALB_KEY_URL = _var("AUTH_ALB_KEY_URL", "", "ALB public keys; empty: the region's public-keys.auth.elb URL.")
AUTH_LEEWAY_SECONDS = _var("AUTH_LEEWAY_SECONDS", "5", "Clock skew allowed on exp/nbf/iat.")
AUTH_JWKS_MIN_REFRESH_SECONDS = _var(
    "AUTH_JWKS_MIN_REFRESH_SECONDS", "30", "Least time between two JWKS fetches for unknown key ids."
)
COGNITO_REGION = _var("COGNITO_REGION", "", "Region of the user pool (for the ALB key URL); empty: AWS_REGION.")

# --- gateway: per-client throttling (docs/patterns/rate-limiting.md) ---------------------------------------
RATE_LIMIT_READS_PER_SECOND = _var(
    "RATE_LIMIT_READS_PER_SECOND", "0", "Reads (GET/HEAD/OPTIONS) per second per caller; 0: reads unlimited."
)
RATE_LIMIT_WRITES_PER_SECOND = _var(
    "RATE_LIMIT_WRITES_PER_SECOND", "0", "Writes (other methods) per second per caller; 0: writes unlimited."
)
RATE_LIMIT_BURST = _var(
    "RATE_LIMIT_BURST", "0", "Requests a caller may send at once (bucket size); 0: one second's worth of the rate."
)
RATE_LIMIT_STORE_URL = _var(
    "RATE_LIMIT_STORE_URL", "", "Valkey/Redis of the shared counters, no credentials (rediss:// = TLS); "
    "required when a limit is set."
)
RATE_LIMIT_STORE_USER = _var(
    "RATE_LIMIT_STORE_USER", "", "Store user (ACL); unless RATE_LIMIT_STORE_SECRET_ID is set.", secret=True
)
RATE_LIMIT_STORE_PASSWORD = _var("RATE_LIMIT_STORE_PASSWORD", "", "Store password.", secret=True)
RATE_LIMIT_STORE_SECRET_ID = _var(
    "RATE_LIMIT_STORE_SECRET_ID", "", "Secrets Manager secret (JSON username, password) of the store user."
)
RATE_LIMIT_STORE_TIMEOUT_MS = _var(
    "RATE_LIMIT_STORE_TIMEOUT_MS", "50", "Longest wait for the store per request, in ms (then the request passes)."
)
RATE_LIMIT_STORE_RETRY_SECONDS = _var(
    "RATE_LIMIT_STORE_RETRY_SECONDS", "5", "After a store failure, requests pass unchecked this long before a retry."
)

# --- AWS SDK (read by boto3 where a service fetches a secret) ----------------------------------------------
AWS_REGION = _var("AWS_REGION", "", "Set by ECS; the region of the SDK's calls (and the gateway's fallback region).")
AWS_ENDPOINT_URL_SECRETS_MANAGER = _var(
    "AWS_ENDPOINT_URL_SECRETS_MANAGER", "", "Secrets Manager endpoint; empty: AWS's (the local system: its emulator)."
)
AWS_ACCESS_KEY_ID = _var("AWS_ACCESS_KEY_ID", "", "Unset on AWS (the task role); the local emulator's dummy key.")
AWS_SECRET_ACCESS_KEY = _var(
    "AWS_SECRET_ACCESS_KEY", "", "Unset on AWS (the task role); the local emulator's dummy key.", secret=True
)
AWS_ENDPOINT_URL_S3 = _var(
    "AWS_ENDPOINT_URL_S3",
    "",
    "S3 endpoint, read by boto3 itself; empty: AWS's regional endpoint (the local system: its emulator, "
    "path-style). The presigned upload URL points there, so the browser must reach it.",
)
AWS_ENDPOINT_URL_SQS = _var(
    "AWS_ENDPOINT_URL_SQS", "", "SQS endpoint, read by boto3 itself; empty: AWS's (the local system: its emulator)."
)

# --- inventory: movie posters (contract.posters; docs/patterns/valet-key.md) ------------------------------
POSTER_UPLOAD_BUCKET = _var(
    "POSTER_UPLOAD_BUCKET",
    "",
    "Bucket the presigned poster uploads go to; empty: posters off (POST /api/movies/<id>/poster answers 503).",
)
POSTER_RESULTS_QUEUE_URL = _var(
    "POSTER_RESULTS_QUEUE_URL",
    "",
    "SQS queue of poster.published / poster.rejected results each worker consumes; empty: no consumer.",
)
POSTER_RESULTS_WAIT_SECONDS = _var(
    "POSTER_RESULTS_WAIT_SECONDS",
    "10",
    "SQS long poll of the results consumer, 1-20 s (fewer requests when longer); a stopping worker waits it out.",
)

# --- the saga's bucket: invoices and claim checks (contract.invoices, contract.claim_check) -----------------
# One bucket, two prefixes (invoices/ and claim-checks/). The stacks and the local system set these for the
# services whose SERVICE_VARIABLES list them (billing: both; inventory: CLAIM_CHECK_BUCKET), with S3's endpoint
# (AWS_ENDPOINT_URL_S3) locally.
INVOICES_BUCKET = _var(
    "INVOICES_BUCKET",
    "",
    "Bucket of the invoices (invoices/<order id>.pdf) billing presigns downloads of; empty: "
    "GET /orders/<id>/invoice answers 404 (invoices are not configured).",
)
CLAIM_CHECK_BUCKET = _var(
    "CLAIM_CHECK_BUCKET",
    "",
    "Bucket where events larger than contract.claim_check.MAX_INLINE_BYTES are stored (claim-checks/); "
    "empty: claim check off.",
)
SAGA_STORAGE = (INVOICES_BUCKET, CLAIM_CHECK_BUCKET)

# --- billing ---------------------------------------------------------------------------------------------
BILLING_PREFETCH = _var("BILLING_PREFETCH", "1000", "Unacknowledged deliveries the broker may push.")
BILLING_BATCH_SIZE = _var("BILLING_BATCH_SIZE", "500", "Rows per INSERT (at most BILLING_PREFETCH).")
BILLING_BATCH_WAIT_MS = _var("BILLING_BATCH_WAIT_MS", "50", "How long a batch waits for company, in ms.")
BILLING_RECONNECT_INITIAL_MS = _var("BILLING_RECONNECT_INITIAL_MS", "500", "First reconnect delay, in ms.")
BILLING_RECONNECT_MAX_SECONDS = _var("BILLING_RECONNECT_MAX_SECONDS", "15", "Longest reconnect delay.")
BILLING_CONSUME = _var(
    "BILLING_CONSUME",
    "all",
    "all: every queue, express orders ahead of standard ones; express: only the express queue (AWS's express "
    "consumer service).",
)
BILLING_SHUTDOWN_TIMEOUT_SECONDS = _var(
    "BILLING_SHUTDOWN_TIMEOUT_SECONDS", "15", "Wait for the in-flight batch on SIGTERM (< graceful timeout)."
)
BILLING_MAX_ROWS_PER_SECOND = _var(
    "BILLING_MAX_ROWS_PER_SECOND", "0", "Long-run cap on inserted orders per second (a backlog drains at it); 0: none."
)
BILLING_LEADER_CHECK_SECONDS = _var(
    "BILLING_LEADER_CHECK_SECONDS", "2", "How often a follower tries the leader lock and the leader checks it holds it."
)
BILLING_JOBS_INTERVAL_SECONDS = _var(
    "BILLING_JOBS_INTERVAL_SECONDS", "30", "How often the leader runs the periodic jobs (re-drive, aggregates)."
)
BILLING_SHARDS = _var(
    "BILLING_SHARDS",
    "1",
    "Billing databases the orders are spread over (contract.shards); shard k >= 1 is set by "
    "BILLING_SHARD_<k>_DATABASE_HOST, _PORT, _NAME, _SECRET_ID (each defaults to shard 0's DATABASE_*).",
)
BILLING_REDRIVE_MAX_ATTEMPTS = _var(
    "BILLING_REDRIVE_MAX_ATTEMPTS", "3", "Re-drives of one transient dead letter before it is left for a human."
)
PURCHASE_TIMEOUT_SECONDS = _var(
    "PURCHASE_TIMEOUT_SECONDS",
    "300",
    "A purchase inventory has not answered within this is rejected and its stock released (order.cancelled).",
)

# --- traces (OpenTelemetry; docs/tracing.md) ---------------------------------------------------------
OTEL_TRACES_EXPORTER = _var(
    "OTEL_TRACES_EXPORTER",
    "none",
    "Where spans go: none (tracing off, nearly free), otlp (OTLP/HTTP, AWS: the ADOT collector sidecar) or "
    "file (JSON lines under TRACES_DIR; the local system).",
)
OTEL_TRACES_SAMPLER = _var(
    "OTEL_TRACES_SAMPLER",
    "parentbased_traceidratio",
    "parentbased_traceidratio, traceidratio, parentbased_always_on, always_on or always_off.",
)
OTEL_TRACES_SAMPLER_ARG = _var(
    "OTEL_TRACES_SAMPLER_ARG", "1.0", "Share of new traces kept (0..1) by the *traceidratio samplers."
)
OTEL_EXPORTER_OTLP_ENDPOINT = _var(
    "OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318", "OTLP/HTTP endpoint (/v1/traces is appended)."
)
TRACES_DIR = _var("TRACES_DIR", "", "Folder of the file exporter: one <service>.jsonl, one span per line.")

PROCESS = (
    PORT, BIND_HOST, SERVICE_NAME, LOG_LEVEL, ACCESS_LOG, GUNICORN_WORKERS, GUNICORN_THREADS, GUNICORN_KEEPALIVE,
    GUNICORN_TIMEOUT, GUNICORN_GRACEFUL_TIMEOUT, FORWARDED_ALLOW_IPS, PROMETHEUS_MULTIPROC_DIR,
    OTEL_TRACES_EXPORTER, OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG, OTEL_EXPORTER_OTLP_ENDPOINT, TRACES_DIR,
)
DATABASE = (
    DATABASE_HOST, DATABASE_PORT, DATABASE_NAME, DATABASE_USER, DATABASE_PASSWORD, DATABASE_SSLMODE,
    DATABASE_SSLROOTCERT, DATABASE_POOL_SIZE, DATABASE_CONNECT_TIMEOUT, DATABASE_SECRET_ID,
)
BROKER = (
    RABBITMQ_URL, RABBITMQ_USER, RABBITMQ_PASSWORD, RABBITMQ_SECRET_ID, RABBITMQ_HEARTBEAT, RABBITMQ_CONNECT_TIMEOUT,
    BILLING_QUEUE, BILLING_EXPRESS_QUEUE,
)
GATEWAY = (
    INVENTORY_URL, BILLING_URL, ORDER_ID_KEY, UPSTREAM_CONNECT_TIMEOUT, UPSTREAM_READ_TIMEOUT, AUTH_REQUIRED,
    AUTH_ISSUER, AUTH_JWKS_URL,
    AUTH_ALLOWED_CLIENT_IDS, AUTH_SCOPE_PREFIX, AUTH_GROUP_PERMISSIONS, AUTH_ALB_ARN, AUTH_ALB_KEY_URL,
    AUTH_LEEWAY_SECONDS, AUTH_JWKS_MIN_REFRESH_SECONDS, COGNITO_REGION,
)
RATE_LIMIT = (
    RATE_LIMIT_READS_PER_SECOND, RATE_LIMIT_WRITES_PER_SECOND, RATE_LIMIT_BURST, RATE_LIMIT_STORE_URL,
    RATE_LIMIT_STORE_USER, RATE_LIMIT_STORE_PASSWORD, RATE_LIMIT_STORE_SECRET_ID, RATE_LIMIT_STORE_TIMEOUT_MS,
    RATE_LIMIT_STORE_RETRY_SECONDS,
)
AWS_SDK = (AWS_REGION, AWS_ENDPOINT_URL_SECRETS_MANAGER, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)
POSTERS = (
    POSTER_UPLOAD_BUCKET, POSTER_RESULTS_QUEUE_URL, POSTER_RESULTS_WAIT_SECONDS, AWS_ENDPOINT_URL_S3,
    AWS_ENDPOINT_URL_SQS,
)
BILLING = (
    BILLING_PREFETCH, BILLING_BATCH_SIZE, BILLING_BATCH_WAIT_MS, BILLING_RECONNECT_INITIAL_MS,
    BILLING_RECONNECT_MAX_SECONDS, BILLING_SHUTDOWN_TIMEOUT_SECONDS, BILLING_CONSUME, BILLING_MAX_ROWS_PER_SECOND,
    BILLING_LEADER_CHECK_SECONDS, BILLING_JOBS_INTERVAL_SECONDS, BILLING_REDRIVE_MAX_ATTEMPTS, BILLING_SHARDS,
    PURCHASE_TIMEOUT_SECONDS,
)

#: The variable that renames each queue of ``contract.messaging.QUEUES`` on one broker (its default is the
#: contract's name; tests give each run queues of their own). Its dead-letter queue follows: ``<name>.dlq``.
QUEUE_VARIABLES: dict[str, Variable] = {
    _BILLING_QUEUE.name: BILLING_QUEUE,
    _EXPRESS_QUEUE.name: BILLING_EXPRESS_QUEUE,
}

#: The variables each service reads, in the order its README lists them.
SERVICE_VARIABLES: dict[str, tuple[Variable, ...]] = {
    "inventory": PROCESS + DATABASE + BROKER + AWS_SDK + POSTERS + (CLAIM_CHECK_BUCKET,),
    "billing": PROCESS + DATABASE + BROKER + BILLING + AWS_SDK + SAGA_STORAGE + (AWS_ENDPOINT_URL_S3,),
    "gateway": PROCESS + BROKER + GATEWAY + RATE_LIMIT + AWS_SDK,
}


def variables_of(service: str) -> tuple[Variable, ...]:
    """The variables ``service`` reads."""
    return SERVICE_VARIABLES[service]


#: The per-shard database variables of billing's shards 1.. (``contract.shards.shard_variable``): derived from
#: the ``DATABASE_*`` ones, documented by ``BILLING_SHARDS``; each unset one falls back to shard 0's value.
SHARD_DATABASE_VARIABLES = (DATABASE_HOST, DATABASE_PORT, DATABASE_NAME, DATABASE_SECRET_ID)
BILLING_SHARD_VARIABLES: dict[tuple[int, str], Variable] = {
    (shard, variable.name): _var(
        _shards.shard_variable(shard, variable.name), "", f"Billing shard {shard}'s {variable.name} (unset: shard 0's)."
    )
    for shard in range(1, _shards.MAX_SHARDS)
    for variable in SHARD_DATABASE_VARIABLES
}
BILLING_SHARD_NAMES = frozenset(variable.name for variable in BILLING_SHARD_VARIABLES.values())


def names_of(service: str) -> frozenset[str]:
    """The names of the variables ``service`` reads (billing: with its shards' ``BILLING_SHARD_<k>_*``)."""
    names = frozenset(variable.name for variable in SERVICE_VARIABLES[service])
    return names | BILLING_SHARD_NAMES if BILLING_SHARDS in SERVICE_VARIABLES[service] else names
