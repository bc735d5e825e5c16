"""Profiles: which ports and which state folder one local system uses.

Two profiles can run side by side on one machine: ``dev`` (``make up``) and ``test`` (``make test``).
Service names, their order and their databases come from the contract (``contract.services``); the ports
here are host ports of one machine, not the container ports of the contract (inventory and billing both
listen on 8080 in their containers, but not on one host). Nothing here listens on anything but 127.0.0.1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from contract import services as contract_services
from local_system.processes import LocalSystemError

#: The repository root (``local_system/`` lives directly in it).
REPO_ROOT = Path(__file__).resolve().parent.parent

#: The services in start order (the contract's order: inventory first because the gateway forwards to it).
SERVICES = contract_services.SERVICE_NAMES

#: Infrastructure parts, in start order (``cognito`` is the AWS emulator, see local_system/identity/; ``posters``
#: the poster pipeline's filters, which read its queues: local_system/poster_pipeline.py; ``invoicer`` the saga's
#: invoicer, which consumes invoicer.saga and stores in the emulator: local_system/invoicer_part.py; ``web`` the
#: local web edge, local_system/web_edge.py: it needs the emulator's pool and proxies to the gateway, which it may start
#: before (it answers 502 until the gateway is up)).
INFRASTRUCTURE = (
    "postgres", "rabbitmq", "redis", "cognito", "posters", "invoicer", "web", "pg-exporter", "prometheus"
)

#: The databases the services own, all on the one local PostgreSQL server.
DATABASES = tuple(service.database for service in contract_services.SERVICES if service.database)

#: Most copies of one service ``make scale`` runs (their ports follow the first extra one).
MAX_REPLICAS = 4

#: Environment variable that selects the profile when ``--profile`` is not given.
PROFILE_ENV = "LOCAL_PROFILE"


@dataclass(frozen=True)
class Profile:
    """Ports and state folder of one local system."""

    name: str
    postgres_port: int
    amqp_port: int
    rabbitmq_dist_port: int
    epmd_port: int
    service_ports: dict[str, int] = field(default_factory=dict)
    cognito_port: int = 0
    """The AWS emulator (moto): Cognito and Secrets Manager."""
    rabbitmq_management_port: int = 0
    """RabbitMQ's management HTTP API (the broker's password rotation uses it, as on Amazon MQ)."""
    redis_port: int = 0
    """redis-server: the gateway's shared rate-limit counters (ElastiCache on AWS)."""
    redis_cluster_port: int = 0
    """redis-server's cluster bus (it runs in cluster mode, like ElastiCache Serverless; set beside the client
    port rather than redis' default of client port + 10000)."""

    rabbitmq_prometheus_port: int = 0
    """RabbitMQ's Prometheus plugin (``/metrics`` and ``/metrics/per-object``)."""
    postgres_exporter_port: int = 0
    """prometheus-postgres-exporter: PostgreSQL's statistics as Prometheus metrics."""
    prometheus_port: int = 0
    """Prometheus: scrapes every part, evaluates the rules of ``monitoring/prometheus/rules.yml``."""
    posters_port: int = 0
    """The local poster pipeline's health endpoint (its filters poll the emulator's queues; nothing else listens)."""
    invoicer_port: int = 0
    """The local invoicer's health endpoint (it consumes invoicer.saga; nothing else listens)."""
    prometheus_interval: str = "15s"
    """Prometheus's scrape and rule evaluation interval."""
    alert_for: str | None = None
    """When set, every alert rule's ``for:`` duration is this one instead of the CloudWatch-equivalent one, so
    a test sees an alert fire in seconds; the expressions and thresholds stay the same."""

    replica_ports: dict[str, int] = field(default_factory=dict)
    """First port of the extra copies of a service (``make scale``): copy N listens on ``port + N - 2``. Only
    the services listed can be scaled: consumers (billing), which need no load balancer in front."""

    web_port: int = 0
    """The local web edge: the web front end's files, ``/api/*`` proxied to the gateway (contract.web)."""
    web_login_port: int = 0
    """The emulated Cognito managed login (authorize, token, logout endpoints) of the web front end."""

    settings: dict[str, str] = field(default_factory=dict)
    """Contract variables this profile sets for every service that reads them (the test profile's jobs run
    every 2 s instead of 30, so the e2e tests of the leader's jobs wait seconds, not minutes)."""

    def replica_port(self, service: str, replica: int) -> int:
        """Port of copy ``replica`` (1 = the service's own port, 2.. = the extra copies) of ``service``."""
        if replica == 1:
            return self.service_ports[service]
        if service not in self.replica_ports:
            raise LocalSystemError(
                f"{service} cannot be scaled locally (only {', '.join(self.replica_ports) or 'none'}: "
                "consumers need no load balancer in front)"
            )
        if not 2 <= replica <= MAX_REPLICAS:
            raise LocalSystemError(f"replicas must be between 1 and {MAX_REPLICAS}, got {replica}")
        return self.replica_ports[service] + replica - 2

    @property
    def state_dir(self) -> Path:
        """Where databases, broker data, credentials, pid files and logs live (ignored by git)."""
        return REPO_ROOT / ".run" / self.name

    @property
    def rabbitmq_nodename(self) -> str:
        """Erlang node name; distinct per profile so two brokers never share a node identity."""
        return f"rabbit-{self.name}@localhost"

    def url(self, service: str) -> str:
        """Base URL of a service, e.g. ``http://127.0.0.1:3000``."""
        return f"http://127.0.0.1:{self.service_ports[service]}"


def _dev_service_ports() -> dict[str, int]:
    """Dev ports; each can be moved with ``<SERVICE>_PORT`` (e.g. BILLING_PORT) when a port is taken."""
    defaults = {"inventory": 8080, "billing": 8081, "gateway": 3000}
    return {name: int(os.environ.get(f"{name.upper()}_PORT") or port) for name, port in defaults.items()}


def get_profile(name: str | None = None) -> Profile:
    """Return the named profile, else the one in $LOCAL_PROFILE, else ``dev``."""
    name = name or os.environ.get(PROFILE_ENV) or "dev"
    if name == "dev":
        return Profile(
            "dev", 55432, 55672, 55673, 54369, _dev_service_ports(), cognito_port=55600, rabbitmq_management_port=55690,
            redis_port=55379, redis_cluster_port=55380, rabbitmq_prometheus_port=55692,
            postgres_exporter_port=59187, prometheus_port=59090, prometheus_interval="5s", posters_port=55610,
            invoicer_port=55620,
            replica_ports={"billing": 8082}, web_port=8000, web_login_port=8001,
        )
    if name == "test":
        # Fixed ports: the test run must never be steered onto the dev system by a stray variable. All below
        # Linux's ephemeral range (32768-60999): tests stop and restart parts, and a port in that range can be
        # taken in between as the source port of some outgoing connection, so the restart could not bind it.
        return Profile(
            "test", 26432, 26672, 26673, 26369, {"inventory": 18080, "billing": 18081, "gateway": 13000},
            cognito_port=26600, rabbitmq_management_port=26690, redis_port=26379, redis_cluster_port=26380,
            rabbitmq_prometheus_port=26692, postgres_exporter_port=29287, prometheus_port=29190, posters_port=26610,
            invoicer_port=26620,
            prometheus_interval="1s", alert_for="2s",
            replica_ports={"billing": 18082}, web_port=18000, web_login_port=18001,
            # Jobs every 2 s; a 2 s SQS long poll, so a stopping inventory worker (tests stop and restart it) waits 2 s
            # for the poll in flight, not 10.
            settings={"BILLING_JOBS_INTERVAL_SECONDS": "2", "POSTER_RESULTS_WAIT_SECONDS": "2"},
        )
    raise LocalSystemError(f"unknown profile {name!r} (from --profile or ${PROFILE_ENV}); use 'dev' or 'test'")
