"""The gateway's cache of verified tokens never outlives a token and stays bounded."""

import time

from gateway.auth import Principal, VerifiedTokenCache

ALICE = Principal("sub-1", "client", "alice", frozenset({"movies.read"}))


def test_entry_expires_with_the_token():
    """A cached token is forgotten at its expiry time."""
    cache = VerifiedTokenCache()
    cache.put("token", ALICE, expires_at=time.time() + 0.2)
    assert cache.get("token") == ALICE
    time.sleep(0.3)
    assert cache.get("token") is None


def test_entry_age_is_capped():
    """Even a long-lived token is re-verified after max_age (a key removed from the JWKS stops counting)."""
    cache = VerifiedTokenCache(max_age=0.2)
    cache.put("token", ALICE, expires_at=time.time() + 3600)
    time.sleep(0.3)
    assert cache.get("token") is None


def test_least_recently_used_entries_are_dropped_first():
    """Beyond max_entries the entry used longest ago goes."""
    cache = VerifiedTokenCache(max_entries=2)
    later = time.time() + 60
    cache.put("a", ALICE, later)
    cache.put("b", ALICE, later)
    assert cache.get("a") == ALICE  # a is now more recent than b
    cache.put("c", ALICE, later)
    assert cache.get("b") is None
    assert cache.get("a") == ALICE and cache.get("c") == ALICE
