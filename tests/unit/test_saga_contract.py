"""contract.saga: the queues and bindings agree with the events, and the envelope parser refuses what is malformed."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from contract import saga
from contract.messaging import Queue

PLACED = {"movie_id": 7, "quantity": 2, "total_amount": "19.98", "principal": {"sub": "alice", "name": "Alice"}}


def envelope(**changes) -> bytes:
    """A valid order.placed body with ``changes`` applied (None removes a field)."""
    body = json.loads(saga.new_event(saga.ORDER_PLACED, "order-1", PLACED, event_id="e-1").body())
    for name, value in changes.items():
        if value is None:
            body.pop(name)
        else:
            body[name] = value
    return json.dumps(body).encode()


def test_each_queue_binds_exactly_the_events_its_consumer_consumes():
    """inventory: order.placed + order.cancelled; billing: stock.* + invoice.ready; invoicer: order.confirmed."""
    assert {queue.consumer: set(queue.bindings) for queue in saga.SAGA_QUEUES} == {
        "inventory": {saga.ORDER_PLACED, saga.ORDER_CANCELLED},
        "billing": {saga.STOCK_RESERVED, saga.STOCK_REJECTED, saga.INVOICE_READY},
        "invoicer": {saga.ORDER_CONFIRMED},
    }


def test_saga_queues_are_contract_queues_with_the_same_arguments():
    """A saga queue is a quorum Queue with a dead-letter queue and delivery limit, declared like every other."""
    for queue in saga.SAGA_QUEUES:
        plain = Queue(queue.name, queue.consumer, queue.publishers, queue.description)
        assert isinstance(queue, Queue)
        assert queue.arguments() == plain.arguments()
        assert queue.dead_letter_queue == f"{queue.name}.dlq"


def test_a_renamed_queue_keeps_its_bindings():
    """Tests and brokers rename queues with dataclasses.replace; the bindings follow."""
    assert replace(saga.BILLING_EVENTS, name="other").bindings == saga.BILLING_EVENTS.bindings


def test_a_queue_without_known_bindings_is_refused():
    """A typo in a binding would silently receive nothing: it is refused when the contract is loaded."""
    with pytest.raises(ValueError, match="known event types"):
        saga.SagaQueue("q", "c", (), "d", bindings=("order.placd",))


def test_built_event_round_trips_through_the_parser():
    """new_event writes money as exact text; parse_event gives back the same event."""
    event = saga.new_event(saga.STOCK_RESERVED, "order-1", {"movie_id": 3, "quantity": 1, "unit_price": Decimal("9.5")})
    assert event.data["unit_price"] == "9.50"
    assert saga.parse_event(event.body(), message_id=event.event_id, routing_key=saga.STOCK_RESERVED) == event


def test_builder_never_rounds_money():
    """An amount with more than two decimals is refused, not rounded."""
    with pytest.raises(saga.InvalidEvent, match="total_amount"):
        saga.new_event(saga.ORDER_PLACED, "o", {**PLACED, "total_amount": Decimal("1.005")})


def test_builder_stamps_an_aware_time():
    """occurred_at carries its time zone."""
    event = saga.new_event(saga.ORDER_PLACED, "o", PLACED, occurred_at=datetime(2026, 1, 2, tzinfo=UTC))
    assert event.occurred_at == "2026-01-02T00:00:00.000+00:00"


def test_extra_data_fields_are_accepted():
    """A newer publisher may add data fields; an older consumer reads the ones it knows."""
    event = saga.parse_event(envelope(data={**PLACED, "coupon": "X"}))
    assert event.data["coupon"] == "X"


@pytest.mark.parametrize(
    ("body", "kind", "text"),
    [
        (b"{not json", "invalid_json", "not JSON"),
        (b"\xff\xfe", "invalid_json", "not JSON"),
        (b"[1, 2]", "not_an_object", "JSON object"),
        (envelope(event_id=None), "missing_field", "event_id"),
        (envelope(extra=1), "unknown_field", "extra"),
        (envelope(type="order.shipped"), "unknown_type", "order.shipped"),
        (envelope(event_id=""), "invalid_value", "event_id"),
        (envelope(order_id=12), "invalid_value", "order_id"),
        (envelope(occurred_at="2026-01-02T00:00:00"), "invalid_value", "time zone"),
        (envelope(occurred_at="yesterday"), "invalid_value", "occurred_at"),
        (envelope(data=[]), "not_an_object", "data"),
        (envelope(data={**PLACED, "quantity": 0}), "invalid_value", "quantity"),
        (envelope(data={**PLACED, "quantity": 1001}), "invalid_value", "quantity"),
        (envelope(data={**PLACED, "quantity": True}), "invalid_value", "quantity"),
        (envelope(data={**PLACED, "movie_id": "7"}), "invalid_value", "movie_id"),
        (envelope(data={**PLACED, "total_amount": 19.98}), "invalid_value", "total_amount"),
        (envelope(data={**PLACED, "total_amount": "-1"}), "invalid_value", "total_amount"),
        (envelope(data={**PLACED, "total_amount": "1e3"}), "invalid_value", "total_amount"),
        (envelope(data={**PLACED, "principal": "alice"}), "invalid_value", "principal"),
        (envelope(data={k: v for k, v in PLACED.items() if k != "principal"}), "missing_field", "principal"),
    ],
)
def test_malformed_envelopes_are_refused_with_a_clear_reason(body, kind, text):
    """Each way an envelope can be malformed is refused with its own kind and a reason naming the problem."""
    with pytest.raises(saga.InvalidEvent, match=text) as caught:
        saga.parse_event(body)
    assert caught.value.kind == kind


def test_invoice_ready_needs_a_sha256():
    """The claim check of invoice.ready names a key and a 64-hex checksum."""
    with pytest.raises(saga.InvalidEvent, match="SHA-256"):
        saga.new_event(saga.INVOICE_READY, "o", {"key": "invoices/o.pdf", "sha256": "abc"})


def test_message_id_and_routing_key_must_match_the_envelope():
    """An AMQP message id or routing key that disagrees with the envelope is a mismatch, not an event."""
    with pytest.raises(saga.InvalidEvent, match="message_id") as caught:
        saga.parse_event(envelope(), message_id="e-2")
    assert caught.value.kind == "mismatch"
    with pytest.raises(saga.InvalidEvent, match="routing key"):
        saga.parse_event(envelope(), routing_key=saga.ORDER_CANCELLED)
