"""Express orders: the optional ``priority`` field of the order contract, the queue each priority travels on,
and which queues billing consumes (BILLING_CONSUME)."""

from __future__ import annotations

import json

import pytest

from billing.settings import ConsumerSettings
from common.config import ConfigError, RabbitSettings
from common.orders import InvalidOrder, parse_order
from contract import environment as env
from contract.messaging import BILLING_QUEUE, EXPRESS_QUEUE, PRIORITY_QUEUES, QUEUES


def body(**fields: object) -> bytes:
    """A valid order body with ``fields`` added."""
    return json.dumps({"user_id": "3", "number_of_items": "5", "total_amount": "180", **fields}).encode()


def test_an_order_without_priority_is_standard():
    """Existing clients send no priority: their orders stay standard."""
    assert parse_order(body()).priority == "standard"


@pytest.mark.parametrize("priority", ["standard", "express"])
def test_each_documented_priority_is_accepted(priority):
    """Both documented priorities, standard and express, are kept as given."""
    assert parse_order(body(priority=priority)).priority == priority


@pytest.mark.parametrize(
    ("value", "shown"),
    [("urgent", "'urgent'"), ("Express", "'Express'"), ("", "''"), (None, "null"), (1, "a number"),
     (True, "true"), (["express"], "an array"), ("x" * 100, "a long string")],
)  # fmt: skip
def test_any_other_priority_is_rejected_with_a_clear_reason(value, shown):
    """Anything else is an invalid value whose reason lists the allowed priorities and shows what was sent."""
    with pytest.raises(InvalidOrder) as excinfo:
        parse_order(body(priority=value))
    assert excinfo.value.kind == "invalid_value"
    assert str(excinfo.value) == f'priority must be "standard" or "express", got {shown}'


def test_the_unknown_field_reason_lists_priority_as_allowed():
    """A client misspelling a field learns that priority exists."""
    with pytest.raises(InvalidOrder, match="allowed: user_id, number_of_items, total_amount, priority"):
        parse_order(body(prio="express"))


def test_each_priority_has_its_own_queue_and_dead_letter_queue():
    """Express orders travel on billing.orders.express (dead letters: its .dlq), standard ones on billing.orders."""
    assert PRIORITY_QUEUES == {"express": EXPRESS_QUEUE, "standard": BILLING_QUEUE}
    assert (EXPRESS_QUEUE.name, EXPRESS_QUEUE.dead_letter_queue) == (
        "billing.orders.express",
        "billing.orders.express.dlq",
    )
    assert EXPRESS_QUEUE in QUEUES and EXPRESS_QUEUE.arguments()["x-queue-type"] == "quorum"


def test_the_most_urgent_priority_comes_first():
    """Billing drains the queues in PRIORITY_QUEUES order: express before standard."""
    assert list(PRIORITY_QUEUES) == ["express", "standard"]


def test_the_express_queue_is_renamed_by_its_variable(monkeypatch):
    """BILLING_EXPRESS_QUEUE renames the express queue on a broker (tests use queues of their own); its
    dead-letter queue follows."""
    monkeypatch.setenv("RABBITMQ_USER", "u")
    monkeypatch.setenv(env.BILLING_EXPRESS_QUEUE.name, "mine.express")
    queue = RabbitSettings.from_env().queue(EXPRESS_QUEUE)
    assert (queue.name, queue.dead_letter_queue) == ("mine.express", "mine.express.dlq")


@pytest.mark.parametrize(("consume", "priorities"), [("all", ("express", "standard")), ("express", ("express",))])
def test_billing_consume_selects_the_queues_most_urgent_first(monkeypatch, consume, priorities):
    """BILLING_CONSUME=all consumes both (express first); express consumes only the express queue."""
    monkeypatch.setenv(env.BILLING_CONSUME.name, consume)
    assert ConsumerSettings.from_env().priorities == priorities


def test_billing_consumes_every_queue_by_default():
    """Unset, billing consumes both queues: the local system's one billing process needs no setting."""
    assert ConsumerSettings().priorities == ("express", "standard")


def test_an_unknown_billing_consume_value_is_a_configuration_error(monkeypatch):
    """A typo must stop the service at start, not leave a queue without a consumer."""
    monkeypatch.setenv(env.BILLING_CONSUME.name, "standard")
    with pytest.raises(ConfigError, match="BILLING_CONSUME must be one of all, express"):
        ConsumerSettings.from_env()
