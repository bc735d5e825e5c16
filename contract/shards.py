"""The billing shard map: which billing database holds a user's orders.

Orders are sharded by the ordering principal (``user_id``, the Cognito ``sub``), not by order: a user's list
and every one of their orders live in one shard, so a read names its shard without asking the others, and a
user's orders fail or succeed together when a shard is away.

Two steps, both pure functions of their inputs, so the gateway, billing and the rebalance command agree
without asking anyone:

1. ``bucket_of(user_id)``: one of :data:`BUCKETS` fixed buckets (a hash of the id). A user's bucket never
   changes, whatever the number of shards.
2. ``shard_of_bucket(bucket, shards)``: rendezvous (highest-random-weight) hashing of the bucket over the
   shards ``0 .. shards-1``. Adding shard N moves only the buckets that now prefer N (about 1/(N+1) of them,
   each to the new shard); no bucket moves between old shards. :func:`moves` lists them for the rebalance.

Shard 0 is the original ``billing_db`` and reads the ``DATABASE_*`` variables; shard k >= 1 reads
``BILLING_SHARD_<k>_DATABASE_HOST`` / ``_PORT`` / ``_NAME`` / ``_SECRET_ID`` (:func:`shard_variable`), each
falling back to shard 0's value when unset (locally the shards are databases of one server).
"""

from __future__ import annotations

import functools
import hashlib

#: Fixed forever: changing it would move every user. 256 keeps buckets small and the map readable.
BUCKETS = 256
#: Most shards the map is written for (a guard against a typo such as BILLING_SHARDS=20 instead of 2).
MAX_SHARDS = 16


def _score(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def bucket_of(user_id: str) -> int:
    """The bucket (0 .. BUCKETS-1) of ``user_id``; raises ValueError for an empty id."""
    if not user_id:
        raise ValueError("a user id is needed to pick a shard")
    return _score(f"user:{user_id}") % BUCKETS


def _check_shards(shards: int) -> None:
    if not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"shards must be between 1 and {MAX_SHARDS}, got {shards}")


def shard_of_bucket(bucket: int, shards: int) -> int:
    """The shard (0 .. shards-1) that holds ``bucket`` when there are ``shards`` shards."""
    _check_shards(shards)
    if not 0 <= bucket < BUCKETS:
        raise ValueError(f"bucket must be between 0 and {BUCKETS - 1}, got {bucket}")
    return max(range(shards), key=lambda shard: _score(f"bucket:{bucket}:shard:{shard}"))


def shard_for(user_id: str, shards: int) -> int:
    """The shard that holds ``user_id``'s orders (one hash per call: the bucket's shard comes from the map)."""
    return shard_map(shards)[bucket_of(user_id)]


@functools.cache
def shard_map(shards: int) -> tuple[int, ...]:
    """The shard of every bucket, by bucket number (computed once per shard count: billing asks per order)."""
    return tuple(shard_of_bucket(bucket, shards) for bucket in range(BUCKETS))


def moves(old_shards: int, new_shards: int) -> dict[int, tuple[int, int]]:
    """``{bucket: (from_shard, to_shard)}`` for every bucket that changes shard between the two counts."""
    old, new = shard_map(old_shards), shard_map(new_shards)
    return {bucket: (old[bucket], new[bucket]) for bucket in range(BUCKETS) if old[bucket] != new[bucket]}


def shard_variable(shard: int, name: str) -> str:
    """The environment variable of shard ``shard`` for the ``DATABASE_*`` variable ``name`` (shard 0: itself)."""
    if shard < 0:
        raise ValueError(f"shard must be 0 or more, got {shard}")
    return name if shard == 0 else f"BILLING_SHARD_{shard}_{name}"
