# ruff: noqa: F811 - the fixtures of billing_saga_support are imported, then named as test arguments
"""Billing's side of the purchase saga against the real test PostgreSQL: a purchase is stored pending with its
``order.placed`` in the same transaction, the ``billing.saga`` handler confirms, rejects, compensates and records
invoices, and the leader's timeout rejects purchases inventory never answered. Events of inventory and the
invoicer are hand-built with ``contract.saga.new_event``; each test uses orders (and owners) of its own."""

from __future__ import annotations

import secrets
from decimal import Decimal

import pytest

from billing.jobs import reject_timed_out_purchases
from billing.saga import UnknownOrder, handle_event
from billing.store import OrderRecord
from common.orders import parse_order
from contract import invoices, saga
from tests.integration.billing_saga_support import (  # noqa: F401 - billing_env, store, no_billing_service: fixtures
    MOVIE,
    apply,
    billing_env,
    drop_outbox_after,
    invoice_ready,
    new_owner,
    no_billing_service,
    outbox_events,
    outbox_mark,
    purchase_body,
    purchase_row,
    rejected,
    reserved,
    store,
    store_purchase,
)

# A running billing (left by an e2e test) would relay the outbox rows these tests read: stopped first.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_billing_service")]


def test_a_purchase_is_stored_pending_with_its_order_placed_event(store, postgres):
    """The row is pending and the outbox holds exactly one order.placed with movie, quantity, amount and owner."""
    owner = new_owner()
    order_id = store_purchase(store, owner, movie_id=MOVIE + 2, quantity=3, total="30.00")
    assert purchase_row(postgres, order_id)[0] == "pending"
    [event] = outbox_events(postgres, order_id)
    assert (event.type, event.order_id) == (saga.ORDER_PLACED, order_id)
    assert event.data == {"movie_id": MOVIE + 2, "quantity": 3, "total_amount": "30.00",
                          "principal": {"sub": owner.sub, "name": "buyer"}}


def test_a_redelivered_purchase_adds_no_second_event(store, postgres):
    """The same message id again is no new row (False) and no second order.placed."""
    order_id = store_purchase(store, new_owner())
    record = OrderRecord(parse_order(purchase_body()), order_id, "req-again", None)
    assert store.insert([record]) == [False]
    assert len(outbox_events(postgres, order_id)) == 1


def test_the_same_purchase_twice_in_one_batch_is_one_row_and_one_event(store, postgres):
    """Two copies of one message in a batch: the first is stored (True), the second is a duplicate (False)."""
    order_id = secrets.token_hex(32)
    record = OrderRecord(parse_order(purchase_body()), order_id, "req-it", new_owner())
    assert store.insert([record, record]) == [True, False]
    assert len(outbox_events(postgres, order_id)) == 1


def test_a_mixed_batch_stores_classic_orders_unchanged_and_emits_only_for_purchases(store, postgres):
    """In a batch with a purchase, a classic order is stored as always (no saga status) and emits nothing."""
    classic_id, purchase_id = secrets.token_hex(32), secrets.token_hex(32)
    classic = parse_order(b'{"user_id": "it", "number_of_items": 2, "total_amount": "5"}')
    records = [OrderRecord(classic, classic_id, "r1", None),
               OrderRecord(parse_order(purchase_body()), purchase_id, "r2", None)]
    assert store.insert(records) == [True, True]
    assert purchase_row(postgres, classic_id)[0] is None
    assert outbox_events(postgres, classic_id) == []
    [event] = outbox_events(postgres, purchase_id)
    assert event.data["principal"] == {"sub": "anonymous", "name": None}


def test_a_purchase_without_a_message_id_is_refused_before_anything_is_written(store, postgres):
    """A purchase needs its message id (the saga's order id): a ValueError, and no row is written."""
    before = postgres.count_orders()
    with pytest.raises(ValueError, match="needs a message id"):
        store.insert([OrderRecord(parse_order(purchase_body()), None, "r", None)])
    assert postgres.count_orders() == before


# -- the billing.saga handler ----------------------------------------------------------------------------------
def test_stock_reserved_at_the_ordered_price_confirms_and_emits_order_confirmed(store, postgres):
    """2 x 12.50 = 25.00: confirmed with the unit price, and order.confirmed carries the title inventory sent."""
    owner = new_owner()
    order_id = store_purchase(store, owner)
    apply(store, handle_event, reserved(order_id, "12.50", title="Alien"))
    assert purchase_row(postgres, order_id)[:3] == ("confirmed", None, Decimal("12.50"))
    confirmed = outbox_events(postgres, order_id)[-1]
    assert confirmed.type == saga.ORDER_CONFIRMED
    assert confirmed.data == {
        "movie_id": MOVIE, "quantity": 2, "unit_price": "12.50", "total_amount": "25.00",
        "principal": {"sub": owner.sub, "name": "buyer"}, "title": "Alien",
    }


def test_order_confirmed_has_no_title_when_inventory_sent_none(store, postgres):
    """title is optional: an older inventory's stock.reserved still confirms, without one."""
    order_id = store_purchase(store, new_owner())
    apply(store, handle_event, reserved(order_id))
    assert "title" not in outbox_events(postgres, order_id)[-1].data


def test_stock_reserved_at_another_price_rejects_and_cancels(store, postgres):
    """2 x 13.00 != 25.00: the purchase is rejected saying why and order.cancelled releases the stock."""
    order_id = store_purchase(store, new_owner())
    apply(store, handle_event, reserved(order_id, "13.00"))
    status, reason, *_ = purchase_row(postgres, order_id)
    assert status == "rejected" and reason.startswith("price changed")
    cancelled = outbox_events(postgres, order_id)[-1]
    assert (cancelled.type, cancelled.data["movie_id"], cancelled.data["quantity"]) == (saga.ORDER_CANCELLED, MOVIE, 2)


def test_stock_reserved_after_a_timeout_cancels_and_keeps_the_timeout_reason(store, postgres):
    """A reservation for a purchase the leader already rejected is compensated; the order stays rejected."""
    order_id = store_purchase(store, new_owner())
    postgres.query("billing_db", "UPDATE orders SET created_at = now() - interval '2 hours' WHERE message_id = %s",
                   (order_id,))
    assert reject_timed_out_purchases(store, 3600) >= 1
    apply(store, handle_event, reserved(order_id))
    expected = ("rejected", "timed out: inventory did not answer within 3600 seconds")
    assert purchase_row(postgres, order_id)[:2] == expected
    types = [event.type for event in outbox_events(postgres, order_id)]
    assert types == [saga.ORDER_PLACED, saga.ORDER_CANCELLED, saga.ORDER_CANCELLED]


def test_a_second_reservation_of_a_confirmed_purchase_changes_nothing(store, postgres):
    """A confirmed purchase keeps its stock: another stock.reserved emits no cancel and no second confirm."""
    order_id = store_purchase(store, new_owner())
    apply(store, handle_event, reserved(order_id))
    apply(store, handle_event, reserved(order_id))
    assert [e.type for e in outbox_events(postgres, order_id)] == [saga.ORDER_PLACED, saga.ORDER_CONFIRMED]


def test_stock_rejected_rejects_the_purchase_with_inventorys_reason(store, postgres):
    """stock.rejected: rejected, with the reason inventory gave; nothing to compensate, nothing emitted."""
    order_id = store_purchase(store, new_owner())
    apply(store, handle_event, rejected(order_id, "not enough stock: 1 left"))
    assert purchase_row(postgres, order_id)[:2] == ("rejected", "not enough stock: 1 left")
    assert [e.type for e in outbox_events(postgres, order_id)] == [saga.ORDER_PLACED]


@pytest.mark.parametrize("build", [reserved, rejected, invoice_ready], ids=["reserved", "rejected", "invoice"])
def test_an_event_for_an_order_billing_never_stored_is_refused(store, build):
    """It cannot be one of ours: UnknownOrder (the consumer dead-letters it with this reason)."""
    with pytest.raises(UnknownOrder):
        apply(store, handle_event, build(secrets.token_hex(32)))


def test_stock_reserved_for_a_classic_order_is_refused(store):
    """A classic order has no saga: an event naming it is refused like an unknown order."""
    order_id = secrets.token_hex(32)
    store.insert([OrderRecord(parse_order(b'{"user_id": "it", "number_of_items": 2, "total_amount": "5"}'),
                              order_id, "r", None)])
    with pytest.raises(UnknownOrder):
        apply(store, handle_event, reserved(order_id))


def test_invoice_ready_records_key_and_checksum_on_the_confirmed_purchase(store, postgres):
    """invoice.ready stores the claim check (key, sha256) on the order."""
    order_id = store_purchase(store, new_owner())
    apply(store, handle_event, reserved(order_id), invoice_ready(order_id, sha256="cd" * 32))
    assert purchase_row(postgres, order_id)[3:] == (invoices.invoice_key(order_id), "cd" * 32)


def test_invoice_ready_with_another_key_is_refused(store, postgres):
    """Billing presigns the recorded key: a key that is not this order's invoice key is never recorded."""
    order_id = store_purchase(store, new_owner())
    apply(store, handle_event, reserved(order_id))
    with pytest.raises(UnknownOrder, match="not the invoice key"):
        apply(store, handle_event, invoice_ready(order_id, key="claim-checks/secret.json"))
    assert purchase_row(postgres, order_id)[3] is None


def test_invoice_ready_for_a_pending_purchase_is_refused(store):
    """Only a confirmed purchase has an invoice."""
    order_id = store_purchase(store, new_owner())
    with pytest.raises(UnknownOrder, match="not a confirmed purchase"):
        apply(store, handle_event, invoice_ready(order_id))


# -- the leader's timeout --------------------------------------------------------------------------------------
def test_purchases_pending_past_the_timeout_are_rejected_and_cancelled(store, postgres):
    """Pending longer than the timeout: rejected ("timed out ...") and order.cancelled, in the same run; a purchase
    placed just now stays pending."""
    old, fresh = store_purchase(store, new_owner()), store_purchase(store, new_owner())
    postgres.query("billing_db", "UPDATE orders SET created_at = now() - interval '2 hours' WHERE message_id = %s",
                   (old,))
    reject_timed_out_purchases(store, 3600)
    status, reason, *_ = purchase_row(postgres, old)
    assert (status, reason.startswith("timed out")) == ("rejected", True)
    cancelled = outbox_events(postgres, old)[-1]
    assert (cancelled.type, cancelled.data["reason"]) == (saga.ORDER_CANCELLED, reason)
    assert purchase_row(postgres, fresh)[0] == "pending"
    assert len(outbox_events(postgres, fresh)) == 1


def test_a_confirmed_purchase_never_times_out(store, postgres):
    """The timeout applies to pending purchases only."""
    order_id = store_purchase(store, new_owner())
    apply(store, handle_event, reserved(order_id))
    postgres.query("billing_db", "UPDATE orders SET created_at = now() - interval '2 hours' WHERE message_id = %s",
                   (order_id,))
    reject_timed_out_purchases(store, 3600)
    assert purchase_row(postgres, order_id)[0] == "confirmed"


def test_stock_rejected_after_a_timeout_keeps_the_timeout_reason(store, postgres):
    """Inventory saw the cancel first and rejected the late placement: the order stays as the timeout left it."""
    order_id = store_purchase(store, new_owner())
    postgres.query("billing_db", "UPDATE orders SET created_at = now() - interval '2 hours' WHERE message_id = %s",
                   (order_id,))
    reject_timed_out_purchases(store, 3600)
    apply(store, handle_event, rejected(order_id, "cancelled before it was placed"))
    assert purchase_row(postgres, order_id)[1].startswith("timed out")


