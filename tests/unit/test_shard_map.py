"""The billing shard map (contract.shards): stable, balanced, and growing by moving only what must move."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from contract.shards import BUCKETS, bucket_of, moves, shard_for, shard_map, shard_of_bucket, shard_variable

USERS = [str(uuid.UUID(int=n * 7919 + 1)) for n in range(2000)]


def test_a_user_always_maps_to_the_same_shard():
    """The map is a pure function: the gateway, billing and the rebalance command agree without asking."""
    assert [shard_for(user, 2) for user in USERS] == [shard_for(user, 2) for user in USERS]


def test_one_shard_holds_everything():
    """BILLING_SHARDS=1 is the unsharded system: every bucket is shard 0."""
    assert set(shard_map(1)) == {0}


@pytest.mark.parametrize("shards", [2, 3, 4])
def test_users_spread_over_every_shard(shards):
    """Each shard gets a fair part of 2,000 users (within 35 % of an even split)."""
    counts = Counter(shard_for(user, shards) for user in USERS)
    even = len(USERS) / shards
    assert set(counts) == set(range(shards))
    assert all(abs(count - even) < 0.35 * even for count in counts.values()), counts


@pytest.mark.parametrize("old", [1, 2, 3])
def test_adding_a_shard_moves_buckets_only_onto_the_new_shard(old):
    """Growing from N to N+1 moves about 1/(N+1) of the buckets, each to the new shard, none between old ones."""
    moved = moves(old, old + 1)
    assert {to for _, to in moved.values()} == {old}
    assert abs(len(moved) - BUCKETS / (old + 1)) < 0.25 * BUCKETS / (old + 1)
    new = shard_map(old + 1)
    assert all(new[bucket] == shard for bucket, shard in enumerate(shard_map(old)) if bucket not in moved)


def test_bad_input_is_refused_with_a_reason():
    """No user, no shards or an out-of-range bucket are errors, not a silent shard 0."""
    with pytest.raises(ValueError, match="user id"):
        bucket_of("")
    with pytest.raises(ValueError, match="shards must be"):
        shard_for("someone", 0)
    with pytest.raises(ValueError, match="bucket must be"):
        shard_of_bucket(BUCKETS, 2)


def test_shard_zero_keeps_the_original_variables():
    """Shard 0 is billing_db as before (DATABASE_HOST); shard 1 has variables of its own."""
    assert shard_variable(0, "DATABASE_HOST") == "DATABASE_HOST"
    assert shard_variable(1, "DATABASE_SECRET_ID") == "BILLING_SHARD_1_DATABASE_SECRET_ID"
