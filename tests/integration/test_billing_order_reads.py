# ruff: noqa: F811 - billing_env is a fixture imported from billing_saga_support
"""Billing's order-status endpoints (``GET /orders/<id>``, ``GET /orders``) against the real test PostgreSQL.

Rows are written with billing's own store (as the consumer writes them); each test uses owners of its own, so
it never sees the rows of another test or of the e2e system.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from billing import create_app
from billing.order_status import Reader, encode_cursor
from billing.store import OrderRecord, OrderStore, Owner
from common.config import DatabaseSettings
from common.db import ConnectionPool
from common.orders import parse_order
from contract.messaging import HTTP_PRINCIPAL_SUB, HTTP_READ_ALL
from contract.services import BILLING
from tests.integration.billing_saga_support import billing_env  # noqa: F401 - a fixture

pytestmark = pytest.mark.integration


@pytest.fixture
def store(billing_env) -> Iterator[OrderStore]:
    """Billing's store on billing_db, for writing the rows the endpoints read."""
    pool = ConnectionPool(DatabaseSettings.from_env(default_name=BILLING.database), application_name="it-reads")
    store = OrderStore(pool)
    yield store
    store.close()


@pytest.fixture
def client(billing_env):
    """A test client of the billing app (the consumer is not started: only the HTTP side is exercised)."""
    return create_app().test_client()


def _owner() -> Owner:
    return Owner(f"sub-{secrets.token_hex(6)}", "someone")


def _store_order(store: OrderStore, owner: Owner | None, items: int = 1) -> str:
    message_id = secrets.token_hex(32)
    order = parse_order(f'{{"user_id": "it", "number_of_items": {items}, "total_amount": "9.5"}}'.encode())
    assert store.insert([OrderRecord(order, message_id, "req-1", owner)]) == [True]
    return message_id


def _get(client, path: str, sub: str | None, read_all: bool = False, **params):
    headers = {} if sub is None else {HTTP_PRINCIPAL_SUB: sub, HTTP_READ_ALL: "true" if read_all else "false"}
    return client.get(path, headers=headers, query_string=params)


def test_stored_order_reads_stored_for_its_owner(client, store):
    """The owner gets 200 stored with the order's fields and when it was stored."""
    owner = _owner()
    order_id = _store_order(store, owner, items=4)
    response = _get(client, f"/orders/{order_id}", owner.sub)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["status"], body["number_of_items"], body["total_amount"], body["placed_by"]) == (
        "stored", 4, "9.50", "someone"
    )
    assert body["stored_at"]


def test_order_without_a_record_reads_queued_with_retry_after(client, store):
    """An id billing has no row for is 202 queued with Retry-After (the gateway vouched for the id)."""
    response = _get(client, f"/orders/{secrets.token_hex(32)}", _owner().sub)
    assert response.status_code == 202
    assert response.get_json()["status"] == "queued"
    assert int(response.headers["Retry-After"]) >= 1


def test_someone_elses_order_is_404_unless_reading_all(client, store):
    """Billing checks ownership itself too: another reader gets 404; a reader of all orders gets it."""
    order_id = _store_order(store, _owner())
    assert _get(client, f"/orders/{order_id}", _owner().sub).status_code == 404
    assert _get(client, f"/orders/{order_id}", _owner().sub, read_all=True).status_code == 200


def test_recorded_rejection_reads_rejected_with_the_reason(client, store):
    """An order recorded as rejected reads 200 rejected with its reason, for its owner only."""
    owner, order_id = _owner(), secrets.token_hex(32)
    assert store.record_rejection(order_id, owner, "invalid_value", "number_of_items must be at least 1")
    response = _get(client, f"/orders/{order_id}", owner.sub)
    assert response.status_code == 200
    assert response.get_json()["status"] == "rejected"
    assert response.get_json()["reason"] == "number_of_items must be at least 1"
    assert _get(client, f"/orders/{order_id}", _owner().sub).status_code == 404


def test_recording_a_rejection_twice_keeps_the_first_reason(store):
    """record_rejection is idempotent: a second call records nothing and the first reason stands."""
    owner, order_id = _owner(), secrets.token_hex(32)
    assert store.record_rejection(order_id, owner, "invalid_json", "first")
    assert not store.record_rejection(order_id, owner, "invalid_json", "second")
    status = store.reader().status(order_id, Reader(owner.sub or ""))
    assert status["reason"] == "first"


def test_rejection_with_nul_characters_is_recorded(store):
    """A header value PostgreSQL text cannot hold (NUL) does not stop the rejection from being recorded."""
    owner, order_id = Owner("sub-\x00-x", None), secrets.token_hex(32)
    assert store.record_rejection(order_id, owner, "invalid_json", "bad \x00 body")


def test_list_pages_the_owners_orders_newest_first(client, store):
    """GET /orders: the owner's orders only, newest first, ``limit`` per page, the cursor leads on."""
    owner = _owner()
    _store_order(store, _owner())
    ids = [_store_order(store, owner, items=n) for n in (1, 2, 3)]
    first = _get(client, "/orders", owner.sub, limit="2").get_json()
    assert [o["order_id"] for o in first["orders"]] == [ids[2], ids[1]]
    second = _get(client, "/orders", owner.sub, limit="2", cursor=first["next_cursor"]).get_json()
    assert [o["order_id"] for o in second["orders"]] == [ids[0]]
    assert second["next_cursor"] is None


def test_list_after_a_cursor_past_everything_is_empty(client, store):
    """A cursor before the first row gives an empty last page (not an error)."""
    owner = _owner()
    _store_order(store, owner)
    body = _get(client, "/orders", owner.sub, cursor=encode_cursor(1)).get_json()
    assert body == {"orders": [], "next_cursor": None}


@pytest.mark.parametrize(
    "params", [{"limit": "0"}, {"limit": "101"}, {"limit": "-1"}, {"limit": "٣"}, {"cursor": "abc"}]
)
def test_bad_limit_or_cursor_is_400(client, params):
    """A limit outside 1..100 (or not ASCII digits) or a foreign cursor is 400 with a JSON error."""
    response = _get(client, "/orders", "sub-x", **params)
    assert response.status_code == 400
    assert response.get_json()["error"]


@pytest.mark.parametrize("path", ["/orders", f"/orders/{'0' * 64}"])
def test_reads_without_the_gateways_principal_header_are_refused(client, path):
    """A request that did not come through the gateway (no X-Principal-Sub) is 400, never anyone's orders."""
    response = _get(client, path, None)
    assert response.status_code == 400
    assert HTTP_PRINCIPAL_SUB in response.get_json()["error"]


def test_too_long_order_id_is_400(client):
    """An id longer than any AMQP message id is refused before the database is asked."""
    assert _get(client, f"/orders/{'a' * 256}", "sub-x").status_code == 400

