"""Limits of the public API: enforced by the service that owns the data, quoted by the gateway's OpenAPI."""

from __future__ import annotations

from decimal import Decimal

TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 2000
# PostgreSQL bigint: a larger id cannot exist; it is answered 404 without asking the database.
MAX_MOVIE_ID = 2**63 - 1
#: A movie's ``price``: 0 to this, two decimals (``numeric(9, 2)`` in movies_db); null means no price.
MAX_PRICE = Decimal("9999999.99")
#: A movie's ``stock``: a whole number from 0 to this (``bigint``, CHECK stock >= 0); null means not for sale.
MAX_STOCK = 1_000_000_000
#: Largest request body the gateway accepts (and the largest order message billing reads).
MAX_REQUEST_BYTES = 64 * 1024

#: Keys of the gateway's shared token buckets in Valkey/Redis: ``ratelimit:<read|write>:<caller>``.
RATE_LIMIT_KEY_PREFIX = "ratelimit:"
#: The gateway's log message when the store fails and throttling stops (one per task per retry period); the
#: AWS alarm ``RateLimitStoreUnavailable`` counts these lines with a metric filter.
RATE_LIMIT_STORE_DOWN_MESSAGE = "rate-limit store unavailable: requests pass unthrottled"
#: The store's one user: those keys, the commands of the token-bucket script and ``CLUSTER SLOTS`` (the one
#: command redis-py's cluster client needs to learn which node serves which slot), nothing else. The same
#: access string on ElastiCache and on the local redis-server (in cluster mode too), so the local system
#: proves it is enough.
RATE_LIMIT_STORE_ACCESS = (
    f"on ~{RATE_LIMIT_KEY_PREFIX}* -@all +@connection +cluster|slots"
    " +eval +evalsha +script|load +hmget +hset +pexpire +time"
)

#: Orders per page of ``GET /api/orders`` (``limit``): the default and the most a caller may ask for.
ORDERS_PAGE_DEFAULT = 20
ORDERS_PAGE_MAX = 100
#: Seconds a client is told to wait (``Retry-After``) before asking again about a queued order.
ORDER_RETRY_AFTER_SECONDS = 1
