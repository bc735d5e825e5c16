"""One batch of deliveries: validate, store with one INSERT, dead-letter what can never be stored, acknowledge.

Up to ``batch_size`` deliveries are written by one multi-row INSERT and acknowledged with one
``basic_ack(multiple=True)``; per-message commits would cap the consumer near 1,000 rows/s.

Traces: one consumer span per message rather than one per batch, so that each order is one trace from the
gateway to its row; the shared INSERT appears as a child span (same timing) in each sampled order's trace.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import psycopg2
from opentelemetry.trace import Span
from pika.adapters.blocking_connection import BlockingChannel

from billing import metrics
from billing.dead_lettering import DeadLetterPublisher
from billing.delivery import Delivery, request_context
from billing.orders import InvalidOrder, parse_order
from billing.purchases import placed_event
from billing.shards import Shards
from billing.store import OrderRecord, OrderStore
from common import tracing
from common.db import DatabaseUnavailable
from contract import messaging

# The consumer's logger: these lines are part of its story, and keep the logger name they always had.
log = logging.getLogger("billing.consumer")

# Errors that one row's data can cause (constraint violations, values PostgreSQL cannot take). Any other
# database error (missing table, permissions, ...) is a problem of the system, not of the message: the batch
# is retried after a backoff instead of dead-lettering every order while it lasts.
_ROW_ERRORS = (psycopg2.DataError, psycopg2.IntegrityError, TypeError, ValueError)

Stored = list[tuple[Delivery, bool]]
Rejected = list[tuple[Delivery, str, str]]
#: The span of each delivery in the batch, by delivery tag (empty when tracing is off).
Spans = dict[int, Span | None]
_ONE_ROW = {"db.system": "postgresql", "db.operation.name": "INSERT", "db.operation.batch.size": 1}


def handle_batch(
    batch: Sequence[Delivery], store: OrderStore | Shards, dead_letters: DeadLetterPublisher, channel: BlockingChannel
) -> None:
    """Store, dead-letter, then acknowledge one batch. Raises (without acking) when a dependency fails.

    With several shards (``billing.shards``) the batch is split by the shard of each order's principal; a
    shard that is away has its orders parked in the dead-letter queue (kind ``shard_unavailable``, re-driven
    by the leader once it answers) while the other shards' orders are stored. Only when no shard answers does
    the batch fail as a whole (nothing acknowledged: the orders wait in the queue, the consumer backs off).
    """
    started = time.perf_counter()
    shards = store if isinstance(store, Shards) else Shards([store])
    # One span per message, a child of its producer's span: each order stays one trace (None: tracing off).
    spans = {delivery.delivery_tag: _consumer_span(delivery) for delivery in batch} if tracing.enabled else {}
    try:
        groups: dict[int, list[Delivery]] = {}
        for delivery in batch:
            groups.setdefault(shards.index_for(delivery.owner.sub if delivery.owner else None), []).append(delivery)
        for shard, deliveries in groups.items():
            _handle_shard(shards, shard, deliveries, dead_letters, spans)
        # Everything up to the last tag is now committed, parked, or safely in the dead-letter queue.
        channel.basic_ack(delivery_tag=batch[-1].delivery_tag, multiple=True)
    finally:
        tracing.end(list(spans.values()))
    metrics.BATCH_SIZE.observe(len(batch))
    metrics.BATCH_DURATION.observe(time.perf_counter() - started)


def _consumer_span(delivery: Delivery):
    return tracing.start_consumer_span(
        f"{delivery.queue} process",
        delivery.properties.headers,
        {"messaging.system": "rabbitmq", "messaging.destination.name": delivery.queue,
         "messaging.message.id": delivery.message_id or "", "request.id": delivery.request_id},
    )


def _handle_shard(
    shards: Shards, shard: int, deliveries: list[Delivery], dead_letters: DeadLetterPublisher, spans: Spans
) -> None:
    """Handle the deliveries of one shard; park them when that shard alone is away."""
    if shards.count > 1 and shards.is_down(shard) and shards.any_other_answers(shard):
        _park(shard, deliveries, dead_letters, "failed moments ago")
        return
    try:
        _handle(deliveries, shards.stores[shard], dead_letters, spans)
    except DatabaseUnavailable as exc:
        shards.mark_down(shard, str(exc))
        if shards.count == 1 or not shards.any_other_answers(shard):
            raise  # every shard is away: nothing is acknowledged, the consumer backs off and reconnects
        _park(shard, deliveries, dead_letters, str(exc))


def _park(shard: int, deliveries: Sequence[Delivery], dead_letters: DeadLetterPublisher, why: str) -> None:
    """Move a down shard's deliveries to the dead-letter queue, to be re-driven once the shard answers.

    Rows of the batch this shard had already committed (none: a failed INSERT commits nothing) would be
    absorbed on re-drive by the message-id constraint of the same shard.
    """
    reason = f"billing shard {shard} is unavailable ({why}); re-driven by the leader once it answers"
    for delivery in deliveries:
        dead_letters.publish(delivery, messaging.SHARD_UNAVAILABLE_KIND, reason,
                             extra_headers={messaging.BILLING_SHARD: shard})
    metrics.MESSAGES_CONSUMED.labels("parked").inc(len(deliveries))


def _handle(
    batch: Sequence[Delivery], store: OrderStore, dead_letters: DeadLetterPublisher, spans: Spans,
) -> None:
    valid: list[tuple[Delivery, OrderRecord]] = []
    rejected: Rejected = []
    for delivery in batch:
        try:
            order = parse_order(delivery.body)
        except InvalidOrder as exc:
            rejected.append((delivery, exc.kind, str(exc)))
        except Exception as exc:  # an unexpected error must dead-letter, not loop forever
            with request_context(delivery.request_id), tracing.use(spans.get(delivery.delivery_tag)):
                log.exception("unexpected error while validating a message")
            rejected.append((delivery, "internal_error", f"{type(exc).__name__}: {exc}"))
        else:
            record = OrderRecord(order, delivery.message_id, delivery.request_id, delivery.owner)
            problem = _purchase_problem(record)
            if problem:
                rejected.append((delivery, "invalid_value", problem))
            else:
                valid.append((delivery, record))

    stored, refused = _store_records(store, valid, spans)
    rejected.extend(refused)
    for delivery, kind, reason in rejected:
        # Recorded before the dead letter is published: a failure here leaves the batch unacknowledged, to be
        # redelivered, rather than a rejected order whose status stays "queued" for ever.
        if delivery.message_id:
            store.record_rejection(delivery.message_id, delivery.owner, kind, reason)
        message_span = spans.get(delivery.delivery_tag)
        tracing.fail(message_span, f"{kind}: {reason}")
        with tracing.use(message_span), tracing.children(
            [message_span], f"{delivery.queue}.dlq publish", tracing.PRODUCER, error=kind
        ):
            dead_letters.publish(delivery, kind, reason)

    _report(stored, rejected, spans)


def _purchase_problem(record: OrderRecord) -> str | None:
    """Why a purchase can never start its saga (no message id, or one no event can carry); None when it can."""
    if not record.order.is_purchase:
        return None
    try:
        placed_event(record)
    except ValueError as exc:
        return str(exc)
    return None


def _store_records(
    store: OrderStore, valid: Sequence[tuple[Delivery, OrderRecord]], spans: Spans
) -> tuple[Stored, Rejected]:
    """Insert the batch; if the database refuses it, retry row by row to isolate the culprit(s).

    Returns (delivery, newly stored?) pairs and (delivery, kind, reason) for rows the database refused.
    Other failures propagate: nothing is acknowledged and the batch is redelivered after a reconnect.
    """
    if not valid:
        return [], []
    try:
        # One INSERT for the batch, shown in the trace of each order it stores.
        with tracing.children([spans.get(d.delivery_tag) for d, _ in valid], "INSERT orders", attributes={
            "db.system": "postgresql", "db.operation.name": "INSERT", "db.operation.batch.size": len(valid),
        }):
            outcome = store.insert([record for _, record in valid])
        return [(delivery, new) for (delivery, _), new in zip(valid, outcome, strict=True)], []
    except _ROW_ERRORS as exc:  # a data error in one row must not block the other rows
        log.warning(
            "database refused a batch; storing its rows one by one",
            extra={"batch_size": len(valid), "reason": f"{type(exc).__name__}: {str(exc).strip()}"},
        )
    stored: Stored = []
    refused: Rejected = []
    for delivery, record in valid:
        try:
            with tracing.children([spans.get(delivery.delivery_tag)], "INSERT orders", attributes=_ONE_ROW):
                stored.append((delivery, store.insert([record])[0]))
        except _ROW_ERRORS as exc:  # this row is the poison; dead-letter it with the reason
            refused.append((delivery, "rejected_by_database", f"{type(exc).__name__}: {str(exc).strip()}"))
    return stored, refused


def _report(
    stored: Sequence[tuple[Delivery, bool]], rejected: Sequence[tuple[Delivery, str, str]], spans: Spans
) -> None:
    """One log line per order (carrying its request id and trace id) and the consumed-messages counters."""
    new = 0
    for delivery, is_new in stored:
        with request_context(delivery.request_id), tracing.use(spans.get(delivery.delivery_tag)):
            if delivery.message_id is None:
                log.warning("order stored without a message_id: a redelivery of it would be stored again")
            elif is_new:
                log.info("order stored", extra={"message_id": delivery.message_id})
            else:
                log.info("duplicate order ignored", extra={"message_id": delivery.message_id})
        new += is_new
    if new:
        metrics.MESSAGES_CONSUMED.labels("stored").inc(new)
    if len(stored) - new:
        metrics.MESSAGES_CONSUMED.labels("duplicate").inc(len(stored) - new)
    if rejected:
        metrics.MESSAGES_CONSUMED.labels("dead_lettered").inc(len(rejected))
