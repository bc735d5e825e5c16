"""The token-bucket script (``gateway.token_bucket``) against the test run's real redis-server, logged in as
the gateway's user with exactly the access string ElastiCache gets (``contract.limits``). The server runs as a
one-node Redis Cluster and the gateway's client is a cluster client, as against ElastiCache Serverless."""

from __future__ import annotations

import socket
import time
import uuid

import pytest
import redis
from redis.cluster import RedisCluster

from common.secrets import Login, StaticCredentials
from gateway.token_bucket import StoreUnavailable, TokenBucketStore, bucket_key
from local_system.redis_server import ADMIN_USER, GATEWAY_USER, HASH_SLOTS


def _store(redis_store, password: str | None = None) -> TokenBucketStore:
    login = redis_store.logins()[GATEWAY_USER]
    credentials = StaticCredentials(Login(login.user, password or login.password))
    return TokenBucketStore(redis_store.url, credentials, timeout_seconds=0.5)


def _key() -> str:
    return bucket_key("read", f"test-{uuid.uuid4()}")


def _admin(redis_store) -> redis.Redis:
    login = redis_store.logins()[ADMIN_USER]
    return redis.Redis(port=redis_store.port, username=login.user, password=login.password)


def test_a_full_bucket_allows_its_size_then_refuses(redis_store):
    """Size 3 at 0.1/s: three requests pass (2, 1, 0 left), the fourth is refused with 10 s to wait."""
    store, key = _store(redis_store), _key()
    decisions = [store.take(key, 0.1, 3) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[3].retry_after_seconds == 10
    assert decisions[3].limit == 3
    assert 29 <= decisions[3].reset_seconds <= 30


def test_tokens_come_back_at_the_rate(redis_store):
    """At 20 tokens/s a bucket of 1 that was just emptied has a token again after 1/20 s (slept: 0.2 s)."""
    store, key = _store(redis_store), _key()
    assert store.take(key, 20, 1).allowed
    assert not store.take(key, 20, 1).allowed
    time.sleep(0.2)
    assert store.take(key, 20, 1).allowed


def test_two_clients_draw_from_one_bucket(redis_store):
    """Two store clients (two gateway tasks) share a caller's bucket: 2 + 1 of a size 3 leaves none."""
    first, second, key = _store(redis_store), _store(redis_store), _key()
    assert first.take(key, 0.1, 3).allowed and first.take(key, 0.1, 3).allowed
    assert second.take(key, 0.1, 3).allowed
    assert not second.take(key, 0.1, 3).allowed
    assert not first.take(key, 0.1, 3).allowed


def test_an_idle_bucket_expires_once_it_would_be_full(redis_store):
    """The key's TTL is the time to refill (2 tokens at 1/s: 2 s) plus a second, so idle callers vanish."""
    store, key = _store(redis_store), _key()
    store.take(key, 1, 2)
    store.take(key, 1, 2)
    ttl_ms = _admin(redis_store).pttl(key)
    assert 2000 < ttl_ms <= 3000


def test_the_gateway_user_can_touch_nothing_but_its_buckets(redis_store):
    """Least privilege: the gateway's login may not read other keys or run other commands."""
    login = redis_store.logins()[GATEWAY_USER]
    client = redis.Redis(port=redis_store.port, username=login.user, password=login.password)
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.get("movies:secret")
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.flushall()
    with pytest.raises(redis.exceptions.NoPermissionError):  # of CLUSTER, only SLOTS (the client's topology read)
        client.execute_command("CLUSTER", "NODES")


def test_a_wrong_password_is_an_auth_failure(redis_store):
    """A refused login raises StoreUnavailable('auth') (the limiter then fails open)."""
    with pytest.raises(StoreUnavailable) as caught:
        _store(redis_store, password="not-the-password").take(_key(), 1, 1)
    assert caught.value.kind == "auth"


def test_a_silent_store_is_a_timeout_not_a_hang():
    """A server that accepts but never answers: StoreUnavailable('timeout') after the configured timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        store = TokenBucketStore(f"redis://127.0.0.1:{listener.getsockname()[1]}/0", None, timeout_seconds=0.05)
        with pytest.raises(StoreUnavailable) as caught:
            store.take(_key(), 1, 1)
    assert caught.value.kind == "timeout"


def test_the_store_is_a_one_node_cluster_that_refuses_select(redis_store):
    """Like ElastiCache Serverless: cluster mode on, every slot served by the one node, state ok, no SELECT."""
    admin = _admin(redis_store)
    assert admin.info("cluster")["cluster_enabled"] == 1
    info = admin.cluster("info")
    assert info["cluster_state"] == "ok"
    assert int(info["cluster_slots_assigned"]) == HASH_SLOTS
    assert int(info["cluster_known_nodes"]) == 1
    with pytest.raises(redis.exceptions.ResponseError, match="SELECT is not allowed in cluster mode"):
        admin.execute_command("SELECT", "1")


def test_the_gateway_store_is_a_cluster_client_that_reads_the_topology(redis_store):
    """The gateway's client is redis-py's RedisCluster: it asks CLUSTER SLOTS (allowed to the gateway user)
    before its first bucket, and then takes tokens from the cluster."""
    calls_before = _cluster_slots_calls(redis_store)
    store = _store(redis_store)
    assert store.take(_key(), 0.1, 3).allowed
    assert isinstance(store._client, RedisCluster)
    assert _cluster_slots_calls(redis_store) > calls_before


def _cluster_slots_calls(redis_store) -> int:
    return _admin(redis_store).info("commandstats").get("cmdstat_cluster|slots", {}).get("calls", 0)


def test_a_store_that_stops_answering_costs_one_timeout_not_a_topology_read(redis_store):
    """A timeout on a working client raises at once: redis-py's refresh of the topology (a new connection and
    CLUSTER SLOTS, a second timeout) is skipped; the failed client is dropped and the next call builds anew."""
    store, key = _store(redis_store), _key()
    assert store.take(key, 0.1, 3).allowed
    admin = _admin(redis_store)
    connections_before = admin.info("stats")["total_connections_received"]
    admin.execute_command("CLIENT", "PAUSE", "1500", "ALL")  # the server holds every client's commands
    with pytest.raises(StoreUnavailable) as caught:
        store.take(key, 0.1, 3)
    assert caught.value.kind == "timeout"
    time.sleep(1.6)  # until the pause is over (not a speed assertion: the count below is what is checked)
    assert admin.info("stats")["total_connections_received"] == connections_before
    assert store.take(key, 0.1, 3).allowed  # a new client: the store is used again
