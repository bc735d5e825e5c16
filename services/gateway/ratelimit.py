"""Per-caller throttling: separate read and write budgets per principal, shared by every gateway task.

``RateLimiter.from_env()`` returns None when both rates are 0 (the default): then nothing here runs on a
request and no store client exists. When on, the ``/api`` authentication hook calls :meth:`RateLimiter.check`
once the caller is known; over the budget the request is answered ``429`` with ``Retry-After`` and the
``RateLimit-Limit`` / ``RateLimit-Remaining`` / ``RateLimit-Reset`` headers (IETF httpapi RateLimit header
fields draft), which every throttled response carries too.

Fail open: when the store does not answer within its timeout (or refuses us), the request passes, a metric
counts it, and for RATE_LIMIT_STORE_RETRY_SECONDS every request passes without asking the store (a circuit),
so a store outage costs one timeout per period and one log line, never a 5xx.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from common.config import ConfigError, env_float, env_int, env_str
from common.secrets import credentials_for
from contract import environment as env
from contract.limits import RATE_LIMIT_STORE_DOWN_MESSAGE
from gateway.access import SAFE_METHODS
from gateway.metrics import RATE_LIMIT_DECISIONS, RATE_LIMIT_STORE_ERRORS

log = logging.getLogger(__name__)

READ, WRITE = "read", "write"


def budget_of(method: str) -> str:
    """The budget a request draws from: reads (GET, HEAD, OPTIONS) or writes (everything else)."""
    return READ if method.upper() in SAFE_METHODS else WRITE


@dataclass(frozen=True)
class Budget:
    """Tokens per second and bucket size of one budget class."""

    rate: float
    size: int


@dataclass(frozen=True)
class RateLimitSettings:
    """The RATE_LIMIT_* variables."""

    reads_per_second: float
    writes_per_second: float
    burst: int
    store_url: str
    timeout_seconds: float
    retry_seconds: float

    @classmethod
    def from_env(cls) -> RateLimitSettings:
        """Read the variables (rates may be 0: that class is unlimited)."""
        reads = env_float(env.RATE_LIMIT_READS_PER_SECOND, allow_zero=True)
        writes = env_float(env.RATE_LIMIT_WRITES_PER_SECOND, allow_zero=True)
        url = env_str(env.RATE_LIMIT_STORE_URL)
        if (reads or writes) and not url.startswith(("redis://", "rediss://")):
            raise ConfigError("RATE_LIMIT_STORE_URL must be redis:// or rediss://host:port when a limit is set")
        if "@" in url:
            raise ConfigError("RATE_LIMIT_STORE_URL must not carry credentials; use RATE_LIMIT_STORE_USER/PASSWORD")
        return cls(
            reads_per_second=reads,
            writes_per_second=writes,
            burst=env_int(env.RATE_LIMIT_BURST),
            store_url=url,
            timeout_seconds=env_float(env.RATE_LIMIT_STORE_TIMEOUT_MS) / 1000,
            retry_seconds=env_float(env.RATE_LIMIT_STORE_RETRY_SECONDS),
        )

    @property
    def enabled(self) -> bool:
        """True when at least one class has a limit."""
        return self.reads_per_second > 0 or self.writes_per_second > 0

    def budget(self, budget: str) -> Budget | None:
        """The budget of ``read`` or ``write``; None when that class is unlimited."""
        rate = self.reads_per_second if budget == READ else self.writes_per_second
        if rate <= 0:
            return None
        return Budget(rate, self.burst or max(1, round(rate)))



class RateLimiter:
    """Decides per request; holds the store client and the fail-open circuit."""

    def __init__(self, settings: RateLimitSettings, store):
        self.settings = settings
        self.store = store
        self._lock = threading.Lock()
        self._closed_until = 0.0  # monotonic time before which the store is not asked

    @classmethod
    def from_env(cls) -> RateLimiter | None:
        """A limiter when RATE_LIMIT_*_PER_SECOND sets a limit, else None (and redis is not even imported)."""
        settings = RateLimitSettings.from_env()
        if not settings.enabled:
            return None
        from gateway.token_bucket import TokenBucketStore  # only now: the import costs when throttling is off

        user, password = env_str(env.RATE_LIMIT_STORE_USER), env_str(env.RATE_LIMIT_STORE_PASSWORD)
        secret_id = env_str(env.RATE_LIMIT_STORE_SECRET_ID)
        credentials = credentials_for(user, password, secret_id) if (user or password or secret_id) else None
        return cls(settings, TokenBucketStore(settings.store_url, credentials, settings.timeout_seconds))

    def check(self, method: str, subject: str):
        """The Decision for one request of ``subject``; None when its class is unlimited or the store is down."""
        budget_name = budget_of(method)
        budget = self.settings.budget(budget_name)
        if budget is None:
            return None
        if time.monotonic() < self._closed_until:
            RATE_LIMIT_DECISIONS.labels(budget_name, "store_unavailable").inc()
            return None
        from gateway.token_bucket import StoreUnavailable, bucket_key

        try:
            decision = self.store.take(bucket_key(budget_name, subject), budget.rate, budget.size)
        except StoreUnavailable as exc:
            self._open_circuit(exc)
            RATE_LIMIT_DECISIONS.labels(budget_name, "store_unavailable").inc()
            return None
        RATE_LIMIT_DECISIONS.labels(budget_name, "allowed" if decision.allowed else "throttled").inc()
        return decision

    def _open_circuit(self, exc) -> None:
        """Stop asking the store for a while; one log line per period (not one per request)."""
        RATE_LIMIT_STORE_ERRORS.labels(exc.kind).inc()
        with self._lock:
            now = time.monotonic()
            if now < self._closed_until:
                return  # another thread already opened it
            self._closed_until = now + self.settings.retry_seconds
        log.warning(
            RATE_LIMIT_STORE_DOWN_MESSAGE,
            extra={"kind": exc.kind, "reason": str(exc), "retry_in_seconds": self.settings.retry_seconds},
        )


def headers(decision) -> dict[str, str]:
    """The RateLimit-* headers of a decision (and Retry-After when it refused the request)."""
    values = {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(decision.reset_seconds),
    }
    if not decision.allowed:
        values["Retry-After"] = str(max(1, decision.retry_after_seconds))
    return values
