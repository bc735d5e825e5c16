"""The typed settings of deployment stamps, the geode edge and the outside checks (issue 16), and their rules.

An environment's config (stacks/config.py) holds them in its ``stamps``, ``geode`` and ``outside_checks``
fields; ``validate_stamps`` runs whenever such a config is created. What they deploy: docs/stamps-and-geode.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from contract.permissions import READ_MOVIES

if TYPE_CHECKING:
    from stacks.config import EnvironmentConfig


@dataclass(frozen=True)
class Stamp:
    """One deployment stamp: a complete, independent copy of an environment's regional stacks (own VPC,
    databases, broker, services, edge, monitoring) in one region, serving a share of the users.

    The FIRST stamp of an environment is the environment as it always was: its stacks are ``Movies-<env>-<Stack>``
    with unchanged logical ids, its region is the environment's ``region``. Every other stamp's stacks are
    ``Movies-<env>-<stamp>-<Stack>`` and its physical names ``movies-<env>-<stamp>-...`` (docs/stamps-and-geode.md).
    """

    name: str
    """Short name (lower-case letters and digits): part of the additional stamps' stack and resource names and of
    the registry's SSM paths (``/movies/<env>/stamps/<name>/...``)."""
    region: str
    share_percent: int
    """Share of the users this stamp is meant to serve; the shares of an environment sum to 100. Route 53 routes
    by latency, not by share: the share sizes a stamp (and is what the registry tells tooling), it is not a
    weight."""
    account: str | None = None
    """None: the account that deploys the environment (``CDK_DEFAULT_ACCOUNT``, or the pipeline target's)."""
    domain_name: str | None = None
    """This stamp's own name for its ALB (HTTPS variant); None for the first stamp, which uses the
    environment's ``domain_name``. Required for every other stamp when the environment has a domain."""
    backup_copy_region: str | None = None
    """Where this stamp's recovery points are copied (another region than its own); None for the first stamp:
    the environment's ``backup_copy_region``."""


@dataclass(frozen=True)
class GeodeConfig:
    """The geode edge: one DNS name, latency-routed to the nearest healthy stamp (Route 53)."""

    api_domain_name: str
    """The one name every stamp answers for the API (e.g. ``api.example.com``), in ``hosted_zone_name``."""
    region: str = "us-east-1"
    """Region of the geode stack: Route 53 is global, but its health-check metrics exist only in us-east-1, so
    the health checks' alarms (and the geode's alarm topic and dashboard) must live there."""
    health_check_interval_seconds: int = 30
    """10 (fast, paid extra) or 30."""
    health_check_failure_threshold: int = 3
    """Consecutive failed checks before Route 53 takes a stamp out of the answers."""
    record_ttl_seconds: int = 60
    """TTL of the latency records: how long resolvers may keep sending users to a stamp that just failed."""


@dataclass(frozen=True)
class OutsideChecksConfig:
    """The authenticated API call made from outside every stamp (a CloudWatch Synthetics canary)."""

    canary_every_minutes: int = 15
    """Run interval; each run is billed (cost/prices.py)."""
    path: str = "/api/movies"
    """A read every caller with the ``movies:read`` scope may make."""
    permission: str = READ_MOVIES
    """The permission (contract.permissions) the canary's token asks for: the least the call needs."""


#: The name of an environment's only stamp when its config lists none.
DEFAULT_STAMP = "main"
STAMP_NAME = re.compile(r"^[a-z][a-z0-9]{0,11}$")


def validate_stamps(config: EnvironmentConfig) -> None:
    """Reject stamps that cannot deploy: bad or repeated names, shares not summing to 100, a first stamp outside
    the environment's region, an additional HTTPS stamp without its own domain name, a geode without HTTPS."""
    stamps = config.all_stamps
    names = [stamp.name for stamp in stamps]
    if len(set(names)) != len(names) or not all(STAMP_NAME.match(name) for name in names):
        raise ValueError(f"{config.name}: stamp names must be unique, lower-case letters and digits: {names}")
    if any(stamp.share_percent <= 0 for stamp in stamps) or sum(stamp.share_percent for stamp in stamps) != 100:
        raise ValueError(f"{config.name}: stamp shares must be positive and sum to 100: {names}")
    if config.stamp is None and stamps[0].region != config.region:
        raise ValueError(f"{config.name}: the first stamp ({stamps[0].name}) must be in the region {config.region}")
    for stamp in stamps[1:]:
        if config.https_enabled and not stamp.domain_name:
            raise ValueError(f"{config.name}: stamp {stamp.name} needs its own domain_name (HTTPS variant)")
    if config.geode and not config.https_enabled:
        raise ValueError(f"{config.name}: the geode edge needs the HTTPS variant (domain and hosted zone)")
    if config.geode and config.geode.health_check_interval_seconds not in (10, 30):
        raise ValueError(f"{config.name}: Route 53 checks every 10 or 30 seconds")
