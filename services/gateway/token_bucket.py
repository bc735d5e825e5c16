"""The shared token bucket: one Lua script in Valkey/Redis, so every gateway task draws from the same budget.

Each (caller, budget class) has a hash ``{ratelimit}:<class>:<subject>`` holding its tokens and when they were
counted. The script refills by elapsed time, takes one token if there is one, and answers in one round trip
(EVALSHA; redis-py loads the script once per server when it answers NOSCRIPT). The store's own clock
(``TIME``) is used, so gateway tasks with skewed clocks still agree. Idle keys expire once the bucket would be
full again: a caller who stops sending leaves nothing behind.

The client is built only when throttling is on (``gateway.ratelimit``): with it off, redis is never imported.
Every store call is bounded by a short timeout and never retried; a failure raises :class:`StoreUnavailable`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.credentials import CredentialProvider
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
    """Takes tokens from the shared buckets; thread-safe (redis-py's pool hands each thread a connection)."""

    def __init__(self, url: str, credentials: Credentials | None, timeout_seconds: float):
        self._provider = _LoginProvider(credentials) if credentials is not None else None
        self._client = redis.Redis.from_url(
            url,
            credential_provider=self._provider,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            # One attempt: a retry would double the time a request waits for a store that is down.
            retry=Retry(NoBackoff(), 0),
            retry_on_error=[],
            health_check_interval=0,
            client_name="gateway-ratelimit",
        )
        self._take: Callable = self._client.register_script(BUCKET_SCRIPT)

    def take(self, key: str, rate: float, size: int) -> Decision:
        """Take one token from ``key`` (refilled at ``rate`` per second up to ``size``); StoreUnavailable."""
        try:
            allowed, remaining, wait_us, full_us = self._take(keys=[key], args=[repr(float(rate)), size])
        except redis.AuthenticationError as exc:
            if self._provider is not None and self._provider.last is not None:
                self._provider.credentials.login_refused(self._provider.last)  # a rotation: re-read the secret
            raise StoreUnavailable("auth", str(exc)) from exc
        except redis.TimeoutError as exc:
            raise StoreUnavailable("timeout", str(exc)) from exc
        except redis.ConnectionError as exc:
            raise StoreUnavailable("connection", str(exc)) from exc
        except (redis.RedisError, OSError, ValueError) as exc:
            raise StoreUnavailable("error", str(exc)) from exc
        return Decision(
            allowed=bool(allowed),
            limit=size,
            remaining=int(remaining),
            retry_after_seconds=math.ceil(int(wait_us) / 1_000_000),
            reset_seconds=math.ceil(int(full_us) / 1_000_000),
        )

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()
