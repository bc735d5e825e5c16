"""The shared token bucket: one Lua script in Valkey/Redis, so every gateway task draws from the same budget.

Each (caller, budget class) has a hash ``ratelimit:<class>:<subject>`` holding its tokens and when they were
counted. The script refills by elapsed time, takes one token if there is one, and answers in one round trip
(EVALSHA; redis-py loads the script when a node answers NOSCRIPT). The store's own clock (``TIME``) is used,
so gateway tasks with skewed clocks still agree. Idle keys expire once the bucket would be full again: a
caller who stops sending leaves nothing behind.

The store is a cluster (ElastiCache Serverless exists only cluster-mode enabled; the local redis-server runs
as a one-node cluster), so the client is redis-py's ``RedisCluster``, the same code path on AWS and locally.
The script touches exactly one key, declared in KEYS, so the client routes it to the node owning its slot.

The client is built only when throttling is on (``gateway.ratelimit``): with it off, redis is never imported.
Every store call is bounded by a short timeout and never retried; a failure raises :class:`StoreUnavailable`
and throws the client away, so the next call (which the circuit holds back for a while) starts by reading
the topology anew.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.credentials import CredentialProvider
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from common.secrets import Credentials, Login
from contract.limits import RATE_LIMIT_KEY_PREFIX

#: KEYS[1] the bucket; ARGV[1] tokens per second, ARGV[2] bucket size. Returns {allowed 0/1, tokens left
#: (whole), microseconds until the next token (0 when allowed), microseconds until the bucket is full}.
BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local size = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = size
  at = now
end
tokens = math.min(size, tokens + math.max(0, now - at) * rate / 1000000)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 1000000 / rate)
end
local full_in = math.ceil((size - tokens) * 1000000 / rate)
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(full_in / 1000) + 1000)
return {allowed, math.floor(tokens), wait, full_in}
"""


class StoreUnavailable(RuntimeError):
    """The store did not answer in time, refused the login, or failed otherwise; ``kind`` says which."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


@dataclass(frozen=True)
class Decision:
    """One request's outcome: allowed or not, and what the RateLimit-* headers say."""

    allowed: bool
    limit: int
    """The bucket size: requests a caller may send at once."""
    remaining: int
    retry_after_seconds: int
    """Whole seconds until a token is back (0 when allowed)."""
    reset_seconds: int
    """Whole seconds until the bucket is full again."""


def bucket_key(budget: str, subject: str) -> str:
    """The store key of one caller's budget (``read`` or ``write``)."""
    return f"{RATE_LIMIT_KEY_PREFIX}{budget}:{subject}"


class _LoginProvider(CredentialProvider):
    """Hands redis-py the current login at each new connection (a rotated secret is picked up on reconnect)."""

    def __init__(self, credentials: Credentials):
        self.credentials = credentials
        self.last: Login | None = None

    def get_credentials(self):
        self.last = self.credentials.current()
        if not self.last.user:
            return (self.last.password,)
        return self.last.user, self.last.password


class TokenBucketStore:
    """Takes tokens from the shared buckets; thread-safe (redis-py's pools hand each thread a connection)."""

    def __init__(self, url: str, credentials: Credentials | None, timeout_seconds: float):
        self._url = url
        self._provider = _LoginProvider(credentials) if credentials is not None else None
        self._timeout = timeout_seconds
        self._lock = threading.Lock()
        self._client: RedisCluster | None = None
        self._script = None

    def _connect(self):
        """The cluster client and its script, built on first use: building it asks the store (CLUSTER SLOTS,
        COMMAND), which must neither happen when the gateway starts nor stop it when the store is down."""
        with self._lock:
            if self._client is None:
                client = RedisCluster.from_url(
                    self._url,
                    credential_provider=self._provider,
                    socket_timeout=self._timeout,
                    socket_connect_timeout=self._timeout,
                    # One attempt: a retry would multiply the time a request waits for a store that is down.
                    retry=Retry(NoBackoff(), 0),
                    client_name="gateway-ratelimit",
                )
                _defer_refresh_after_failure(client)
                self._client, self._script = client, client.register_script(BUCKET_SCRIPT)
            return self._client, self._script

    def take(self, key: str, rate: float, size: int) -> Decision:
        """Take one token from ``key`` (refilled at ``rate`` per second up to ``size``); StoreUnavailable."""
        client = None
        try:
            client, script = self._connect()
            allowed, remaining, wait_us, full_us = script(keys=[key], args=[repr(float(rate)), size])
        except (redis.RedisError, RedisClusterException, OSError, ValueError) as exc:
            self._discard(client)
            kind = _kind(exc)
            if kind == "auth" and self._provider is not None and self._provider.last is not None:
                self._provider.credentials.login_refused(self._provider.last)  # a rotation: re-read the secret
            raise StoreUnavailable(kind, str(exc)) from exc
        return Decision(
            allowed=bool(allowed),
            limit=size,
            remaining=int(remaining),
            retry_after_seconds=math.ceil(int(wait_us) / 1_000_000),
            reset_seconds=math.ceil(int(full_us) / 1_000_000),
        )

    def _discard(self, client) -> None:
        """Forget a client that failed (unless another thread already replaced it) and close its connections."""
        if client is None:
            return
        with self._lock:
            if self._client is client:
                self._client = self._script = None
        client.close()

    def close(self) -> None:
        """Close the pooled connections."""
        with self._lock:
            client, self._client, self._script = self._client, None, None
        if client is not None:
            client.close()


def _kind(exc: BaseException) -> str:
    """auth, timeout, connection or error: the first of these the failure (or what caused it) is. The cluster
    client wraps a failed topology read in RedisClusterException, with the real cause chained."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, redis.AuthenticationError):
            return "auth"
        if isinstance(seen, redis.TimeoutError):
            return "timeout"
        if isinstance(seen, redis.ConnectionError):
            return "connection"
        seen = seen.__cause__ or seen.__context__
    return "error"


def _defer_refresh_after_failure(client: RedisCluster) -> None:
    """Keep a store outage to one timeout per request, not two.

    After a connection error or timeout, redis-py's cluster client re-reads the topology (a new connection
    and CLUSTER SLOTS, each bounded by the timeout) inside the failing call, before it raises: against a
    store that is down that doubles the wait of the request that found out. Here that refresh is skipped
    (redis-py marks it with ``last_failed_node_name``); the failed client is thrown away instead, and the
    next attempt, after the limiter's circuit period, builds a new one, whose first step is that same read.
    Other refreshes (after MOVED redirects, a cluster that is down) run as redis-py intends.
    """
    manager = client.nodes_manager
    refresh = manager.initialize

    def initialize(*args, last_failed_node_name=None, **kwargs):
        if last_failed_node_name is None:
            refresh(*args, **kwargs)

    manager.initialize = initialize
