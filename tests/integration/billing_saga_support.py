"""Helpers of the billing purchase tests: storing purchases with billing's own store, reading billing_db's outbox,
and hand-built events of inventory and the invoicer (``contract.saga.new_event``, as their publishers build them)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from decimal import Decimal

import pytest

from billing.store import OrderRecord, OrderStore, Owner
from common.config import DatabaseSettings
from common.db import ConnectionPool, transaction
from common.orders import parse_order
from contract import invoices, saga
from contract.services import BILLING

#: The movie of the tests' purchases: an id no movie of any test system has, so an event that does reach an
#: inventory (another system's relay) reserves nothing real.
MOVIE = 9_000_000_000_000_007


def new_owner() -> Owner:
    """An owner of the test's own (no other test reads its rows)."""
    return Owner(f"sub-{secrets.token_hex(6)}", "buyer")


def purchase_body(movie_id: int = MOVIE, quantity: int = 2, total: str = "25.00") -> bytes:
    """A purchase as the gateway publishes it."""
    return json.dumps({"user_id": "it", "movie_id": movie_id, "quantity": quantity, "total_amount": total}).encode()


def store_purchase(store: OrderStore, owner: Owner | None, **fields) -> str:
    """Store one purchase (pending, with its order.placed) under a fresh 64-hex id; the id."""
    order_id = secrets.token_hex(32)
    assert store.insert([OrderRecord(parse_order(purchase_body(**fields)), order_id, "req-it", owner)]) == [True]
    return order_id


def outbox_events(postgres, order_id: str) -> list[saga.Event]:
    """The events of ``order_id`` waiting in billing_db's outbox, oldest first."""
    rows = postgres.query(
        "billing_db",
        "SELECT body FROM outbox WHERE convert_from(body, 'UTF8')::jsonb->>'order_id' = %s ORDER BY id",
        (order_id,),
    )
    return [saga.parse_event(bytes(row[0])) for row in rows]


def purchase_row(postgres, order_id: str) -> tuple:
    """(purchase_status, purchase_reason, unit_price, invoice_key, invoice_sha256) of the order."""
    return postgres.query(
        "billing_db",
        "SELECT purchase_status, purchase_reason, unit_price, invoice_key, invoice_sha256 FROM orders"
        " WHERE message_id = %s",
        (order_id,),
    )[0]


def reserved(order_id: str, unit_price: str = "12.50", movie_id: int = MOVIE, quantity: int = 2, **extra) -> saga.Event:
    """inventory's stock.reserved (``extra``: fields a newer inventory adds, such as ``title``)."""
    data = {"movie_id": movie_id, "quantity": quantity, "unit_price": Decimal(unit_price), **extra}
    return saga.new_event(saga.STOCK_RESERVED, order_id, data)


def rejected(order_id: str, reason: str = "not enough stock: 1 left") -> saga.Event:
    """inventory's stock.rejected."""
    return saga.new_event(saga.STOCK_REJECTED, order_id, {"movie_id": MOVIE, "quantity": 2, "reason": reason})


def invoice_ready(order_id: str, key: str | None = None, sha256: str = "ab" * 32) -> saga.Event:
    """The invoicer's invoice.ready (the claim check: key and checksum)."""
    data = {"key": key or invoices.invoice_key(order_id), "sha256": sha256, "size": 1234}
    return saga.new_event(saga.INVOICE_READY, order_id, data)


def apply(store: OrderStore, handler, *events: saga.Event) -> None:
    """Apply ``events`` with ``handler`` in one transaction, as the saga consumer does."""
    with store.pool.connection() as conn, transaction(conn) as cur:
        for event in events:
            handler(cur, event)


def outbox_mark(postgres) -> int:
    """The newest outbox row id now (0 when empty): :func:`drop_outbox_after` removes what a test added."""
    return postgres.query("billing_db", "SELECT coalesce(max(id), 0) FROM outbox")[0][0]


def drop_outbox_after(postgres, mark: int) -> None:
    """Delete the outbox rows a test added and nothing relayed: another system's relay (an e2e run) would
    otherwise publish them to inventory, which would reserve real stock for these test orders."""
    postgres.query("billing_db", "DELETE FROM outbox WHERE id > %s", (mark,))


@pytest.fixture(scope="module")
def no_billing_service(test_infrastructure) -> None:
    """Stop the test system's billing processes (an e2e test of this session may have started them): their outbox
    relay would publish and delete the rows these tests read, and their saga consumer would compete for
    ``billing.saga``. The ``local_system`` fixture starts billing again before the next e2e test."""
    for copy in test_infrastructure.replicas("billing")[1:]:
        copy.stop()
    test_infrastructure.stop_service("billing")


@pytest.fixture(scope="module")
def no_inventory_service(test_infrastructure) -> None:
    """Stop the test system's inventory: it would answer the ``order.placed`` a test relays to ``movies.events``
    before the test looks at the pending order. The ``local_system`` fixture starts it again when needed."""
    test_infrastructure.stop_service("inventory")


@pytest.fixture
def billing_env(test_infrastructure, monkeypatch) -> None:
    """The billing service's settings from the test profile (database, broker, the emulator's keys)."""
    for key, value in test_infrastructure.service_env("billing").items():
        if key.startswith(("DATABASE_", "RABBITMQ_", "AWS_")):
            monkeypatch.setenv(key, value)


@pytest.fixture
def store(billing_env, postgres) -> Iterator[OrderStore]:
    """Billing's store on billing_db; the outbox rows a test adds are dropped afterwards."""
    store = OrderStore(ConnectionPool(DatabaseSettings.from_env(default_name=BILLING.database), "it-purchases"))
    store.check()
    mark = outbox_mark(postgres)
    yield store
    drop_outbox_after(postgres, mark)
    store.close()
