"""Billing's shards against the real test PostgreSQL and RabbitMQ: orders stored in their principal's shard,
reads routed to one shard, a shard away parking its orders (re-driven once it is back), and the rebalance
command moving exactly the buckets the map moves.

Each test works in two databases of its own (created and dropped here), so moving or counting rows never
touches the other tests' billing_db.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from decimal import Decimal

import pytest

from billing.aggregates import aggregate_minutes
from billing.consumer import OrderConsumer
from billing.jobs import each_shard, redrive_transient, reject_timed_out_purchases
from billing.order_status import Reader
from billing.rebalance import rebalance
from billing.saga_runner import SagaRunner
from billing.settings import ConsumerSettings
from billing.shard_reads import ShardedReader
from billing.shards import Shards
from billing.store import OrderRecord, OrderStore, Owner
from common.config import DatabaseSettings, RabbitSettings
from common.db import ConnectionPool, DatabaseUnavailable
from common.orders import Order
from contract import messaging, saga
from contract.shards import moves, shard_for
from tests.integration.test_billing_consumer import Queue, billing_env, queue  # noqa: F401 - fixtures
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def shard_databases(test_infrastructure, billing_env) -> Iterator[list[str]]:  # noqa: F811
    """Two fresh databases owned by billing's role (shard 0 and shard 1 of this test); dropped afterwards."""
    names = [f"it_shard_{secrets.token_hex(4)}_{k}" for k in range(2)]
    server = test_infrastructure.postgres
    owner = test_infrastructure.credentials.database("billing_db").user
    server.admin_sql("".join(f'CREATE DATABASE "{name}" OWNER "{owner}";\n' for name in names))
    yield names
    server.admin_sql("".join(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE);\n' for name in names))


def _shards(names: list[str], count: int | None = None) -> Shards:
    base = DatabaseSettings.from_env("billing_db")
    return Shards([
        OrderStore(ConnectionPool(replace(base, name=name), "billing-shard-tests"))
        for name in names[: count or len(names)]
    ])


def _rows(names: list[str], shard: int) -> list[tuple]:
    """(message_id, owner_sub) of every order in the test's shard ``shard``."""
    pool = ConnectionPool(replace(DatabaseSettings.from_env("billing_db"), name=names[shard]), "it-check")
    try:
        with pool.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT message_id, owner_sub FROM orders")
            return cur.fetchall()
    finally:
        pool.close()


def _users(count: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(count)]


def _order(store: OrderStore, sub: str, index: int = 0) -> str:
    message_id = f"it-{uuid.uuid4().hex}"
    record = OrderRecord(Order(f"u{index}", 1 + index % 5, Decimal("10.00")), message_id, "req-it", Owner(sub, "it"))
    assert store.insert([record]) == [True]
    return message_id


@pytest.fixture
def consume(billing_env) -> Iterator[Callable[[Shards], OrderConsumer]]:  # noqa: F811
    """Start an OrderConsumer over the given shards on the test's queue; stopped afterwards."""
    started: list[OrderConsumer] = []

    def start(shards: Shards) -> OrderConsumer:
        consumer = OrderConsumer(shards, RabbitSettings.from_env(), ConsumerSettings.from_env())
        consumer.start()
        started.append(consumer)
        wait_until(lambda: consumer.is_consuming, 20, "the consumer to attach")
        return consumer

    yield start
    for consumer in started:
        consumer.stop(timeout=20)


def test_orders_of_many_users_land_once_each_in_their_shard(shard_databases, queue, consume):  # noqa: F811
    """Orders (each published twice) of 12 users: every one stored once, in the shard the map names for its
    principal, and both shards hold some."""
    shards = _shards(shard_databases)
    consume(shards)
    users = _users(12)
    ids: dict[str, str] = {}
    for user in users:
        [message_id] = queue.publish([{"user_id": "3", "number_of_items": "2", "total_amount": "9"}],
                                     headers={messaging.PRINCIPAL_SUB: user})
        queue.publish([{"user_id": "3", "number_of_items": "2", "total_amount": "9"}], ids=[message_id],
                      headers={messaging.PRINCIPAL_SUB: user})  # a redelivery of the same order
        ids[message_id] = user
    def stored() -> list[tuple]:
        return _rows(shard_databases, 0) + _rows(shard_databases, 1)

    wait_until(lambda: len(stored()) >= len(ids), 20, "every order stored")
    assert sorted(stored()) == sorted(ids.items())
    for shard in (0, 1):
        assert {ids[m] for m, _ in _rows(shard_databases, shard)} == {u for u in users if shard_for(u, 2) == shard}
    assert {shard_for(user, 2) for user in users} == {0, 1}


def test_everyones_orders_come_newest_first_across_shards_and_page_through_each_once(shard_databases):
    """An operator's list (``billing.read``) merges the shards by time: the newest order first whichever shard
    holds it, and pages of 3 return every order exactly once, in time order."""
    shards = _shards(shard_databases)
    users = _users(8)
    placed = [_order(shards.store_for(user), user, index) for index, user in enumerate(users * 2)]
    assert {shard_for(user, 2) for user in users} == {0, 1}
    reader, operator = ShardedReader(shards), Reader("operator", read_all=True)
    seen, cursor = [], None
    while True:
        items, cursor = reader.page(operator, 3, cursor)
        seen += items
        if cursor is None:
            break
    assert [item["order_id"] for item in seen] == list(reversed(placed))
    assert [item["stored_at"] for item in seen] == sorted((item["stored_at"] for item in seen), reverse=True)


def test_reads_ask_only_the_principals_shard(shard_databases):
    """A user's status and list come from their own shard, even while the other shard is away."""
    names = shard_databases
    users = _users(16)
    shards = _shards(names)
    placed = {user: _order(shards.store_for(user), user) for user in users}
    # The same databases, with the other shard unreachable: a read that asked it would fail.
    for away in (0, 1):
        broken = list(names)
        broken[away] = f"{names[away]}_missing"
        reader = ShardedReader(_shards(broken))
        for user in (u for u in users if shard_for(u, 2) != away):
            assert reader.status(placed[user], Reader(user))["status"] == "stored"
            items, _ = reader.page(Reader(user), 10, None)
            assert [item["order_id"] for item in items] == [placed[user]]
        stranded = next(u for u in users if shard_for(u, 2) == away)
        with pytest.raises(DatabaseUnavailable):
            reader.status(placed[stranded], Reader(stranded))


def test_a_shard_away_parks_its_orders_and_the_leader_redrives_them_once_it_is_back(
    shard_databases, queue, consume  # noqa: F811
):
    """Shard 1 unreachable: its users' orders go to the dead-letter queue as shard_unavailable (never lost, no
    requeue loop) while shard 0's are stored; once shard 1 answers, the re-drive moves them back and each is
    stored exactly once in shard 1."""
    names = shard_databases
    users = _users(10)
    down = [names[0], f"{names[1]}_missing"]
    consumer = consume(_shards(down))
    ids = {queue.publish([{"user_id": "3", "number_of_items": "1", "total_amount": "5"}],
                         headers={messaging.PRINCIPAL_SUB: user})[0]: user for user in users}
    ones = {m for m, u in ids.items() if shard_for(u, 2) == 1}
    wait_until(lambda: queue.dead_letter_count() == len(ones), 20, "shard 1's orders parked")
    wait_until(lambda: len(_rows(names, 0)) == len(ids) - len(ones), 20, "shard 0's orders stored")
    assert queue.ready() == 0 and consumer.is_consuming

    consumer.stop(timeout=20)
    good = _shards(names)
    consume(good)
    assert redrive_transient(RabbitSettings.from_env(), max_attempts=1, store=good) == len(ones)
    wait_until(lambda: len(_rows(names, 1)) == len(ones), 20, "shard 1's orders stored after the re-drive")
    assert {m for m, _ in _rows(names, 1)} == ones and queue.dead_letter_count() == 0


def test_rebalance_from_one_to_two_shards_moves_exactly_the_moving_buckets(shard_databases):
    """Orders of 60 users all in shard 0; rebalance 1 -> 2: each order is in exactly the shard the map names,
    the total is unchanged, and a second run moves nothing."""
    names = shard_databases
    one = _shards(names, 1)
    users = _users(60)
    placed = {_order(one.stores[0], user, index): user for index, user in enumerate(users) for _ in range(2)}
    placed[_order(one.stores[0], users[0])] = users[0]
    two = _shards(names)
    two.stores[1].check()

    result = rebalance(two, 1, 2)
    after = {0: _rows(names, 0), 1: _rows(names, 1)}
    assert sorted(after[0] + after[1]) == sorted(placed.items())
    for shard, rows in after.items():
        assert all(shard_for(owner, 2) == shard for _, owner in rows)
    assert sum(moved.rows["orders"] for moved in result.values()) == len(after[1]) > 0
    assert set(result) == {(0, 1)} and set(moves(1, 2).values()) == {(0, 1)}

    assert sum(sum(moved.rows.values()) for moved in rebalance(two, 1, 2).values()) == 0
    assert {0: _rows(names, 0), 1: _rows(names, 1)} == after


def _event(event_type: str, order_id: str, sub: str | None) -> saga.Event:
    data = {"movie_id": 1, "quantity": 1, "reason": "it"}
    if sub is not None:
        data["principal"] = {"sub": sub, "name": None}
    return saga.new_event(event_type, order_id, data)


def test_saga_events_are_applied_in_their_orders_shard_and_parked_while_it_is_away(shard_databases):
    """An event carrying its principal goes to that principal's shard; one without is found by looking; while
    its shard is away (and the other answers) it is parked as shard_unavailable, and with every shard away it
    is left transient (it waits at the broker)."""
    names = shard_databases
    shards = _shards(names)
    runner = SagaRunner(shards, RabbitSettings.from_env())
    [user] = [u for u in _users(40) if shard_for(u, 2) == 1][:1]
    order_id = _order(shards.stores[1], user)
    assert runner.route(_event(saga.STOCK_REJECTED, order_id, user)) is shards.stores[1].pool
    assert runner.route(_event(saga.STOCK_REJECTED, order_id, None)) is shards.stores[1].pool

    half = SagaRunner(_shards([names[0], f"{names[1]}_missing"]), RabbitSettings.from_env())
    kind, _reason, headers = half.park(_event(saga.STOCK_REJECTED, order_id, user), DatabaseUnavailable("away"))
    assert (kind, headers) == (messaging.SHARD_UNAVAILABLE_KIND, {messaging.BILLING_SHARD: 1})
    none = SagaRunner(_shards([f"{names[0]}_missing", f"{names[1]}_missing"]), RabbitSettings.from_env())
    assert none.park(_event(saga.STOCK_REJECTED, order_id, user), DatabaseUnavailable("away")) is None


def test_the_leaders_jobs_skip_a_shard_that_is_away_and_run_on_the_others(shard_databases):
    """Aggregates and purchase timeouts run on every shard that answers; one away is skipped (not blocking the
    others), and only every shard away fails the job."""
    names = shard_databases
    half = _shards([names[0], f"{names[1]}_missing"])
    assert each_shard(half, "aggregates", aggregate_minutes, lambda: True) == 1
    assert each_shard(half, "purchase_timeouts", lambda one: reject_timed_out_purchases(one, 3600), lambda: True) == 1
    with pytest.raises(DatabaseUnavailable):
        each_shard(_shards([f"{names[0]}_missing", f"{names[1]}_missing"]), "aggregates", aggregate_minutes,
                   lambda: True)
