"""The leader's re-drive jobs: dead letters that may succeed now go back to their queue (``billing.jobs`` runs them).

- :func:`redrive_transient`: orders the broker dead-lettered past the delivery limit (a consumer crashed holding
  them; counted in ``x-redrive-attempts``, given up after ``BILLING_REDRIVE_MAX_ATTEMPTS``), and orders parked
  because their shard was away (``shard_unavailable``: back only once that shard answers, never counted).
- :func:`redrive_parked_saga_events`: ``billing.saga`` events parked while their shard was away.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pika

from billing.deadletters import is_transient, parked_shard, redrive_attempts, replay_dead_letters
from billing.delivery import owner_of
from billing.metrics import DEAD_LETTERS_REDRIVEN
from billing.shards import Shards
from billing.store import OrderStore
from common.config import RabbitSettings
from common.db import DatabaseUnavailable
from contract.messaging import PRIORITY_QUEUES
from contract.saga import BILLING_EVENTS

log = logging.getLogger("billing.jobs")


#: Dead letters one re-drive run looks at per queue: each one looked at but left is handed back, which
#: counts towards the dead-letter queue's (practically unreachable) delivery limit.
REDRIVE_SCAN_LIMIT = 1000


def _always() -> bool:
    return True


def _as_shards(store: OrderStore | Shards | None) -> Shards | None:
    return store if isinstance(store, Shards) or store is None else Shards([store])


def redrive_transient(
    rabbit: RabbitSettings,
    max_attempts: int,
    keep_going: Callable[[], bool] = _always,
    store: OrderStore | Shards | None = None,
) -> int:
    """Move the transient dead letters with fewer than ``max_attempts`` re-drives back to their queues.

    Covers every queue of the contract that billing consumes; stops early once ``keep_going()`` says no (the
    leader stepped down). A transient dead letter out of attempts is recorded in ``store`` (when given; in its
    owner's shard) as rejected, kind ``delivery_limit``. Orders parked because their shard was away
    (``shard_unavailable``) go back only once that shard answers again, and never count as an attempt (the
    order is not at fault; an outage may take longer than any number of attempts). Returns how many were moved.
    """
    shards = _as_shards(store)
    answers = _ShardProbe(shards)

    def select(properties: pika.BasicProperties) -> bool:
        headers = properties.headers or {}
        if not keep_going() or not is_transient(headers):
            return False
        parked = parked_shard(headers)
        if parked is not None:
            return answers(parked)
        attempts = redrive_attempts(headers)
        if attempts < max_attempts:
            return True
        if shards is not None and properties.message_id:
            _record_given_up(shards, properties, attempts)
        return False

    moved = 0
    for priority, queue in PRIORITY_QUEUES.items():  # every queue billing consumes, most urgent first
        if not keep_going():
            break
        count = replay_dead_letters(
            rabbit, REDRIVE_SCAN_LIMIT, priority=priority, select=select,
            count_attempt=lambda headers: parked_shard(headers) is None, scan_limit=REDRIVE_SCAN_LIMIT,
        )
        if count:
            DEAD_LETTERS_REDRIVEN.inc(count)
            log.info("re-drove transient dead letters", extra={"queue": rabbit.queue(queue).name, "count": count})
        moved += count
    return moved


def redrive_parked_saga_events(rabbit: RabbitSettings, shards: Shards, keep_going: Callable[[], bool] = _always) -> int:
    """Move the ``billing.saga`` events parked while their shard was away back to ``billing.saga`` once that
    shard answers (``billing.saga_runner``); other dead letters of that queue stay for a human."""
    answers = _ShardProbe(shards)

    def select(properties: pika.BasicProperties) -> bool:
        parked = parked_shard(properties.headers or {})
        return keep_going() and parked is not None and answers(parked)

    count = replay_dead_letters(
        rabbit, REDRIVE_SCAN_LIMIT, select=select, scan_limit=REDRIVE_SCAN_LIMIT, queues=[BILLING_EVENTS]
    )
    if count:
        DEAD_LETTERS_REDRIVEN.inc(count)
        log.info("re-drove parked saga events", extra={"queue": BILLING_EVENTS.name, "count": count})
    return count


class _ShardProbe:
    """Whether a shard answers, asked once per job run (True when there is no store to ask, or the shard is
    beyond the current count: the consumer then routes the message with the current map)."""

    def __init__(self, shards: Shards | None):
        self._shards = shards
        self._known: dict[int, bool] = {}

    def __call__(self, shard: int) -> bool:
        if self._shards is None or shard >= self._shards.count:
            return True
        if shard not in self._known:
            self._known[shard] = self._shards.answers(shard)
        return self._known[shard]


def _record_given_up(shards: Shards, properties: pika.BasicProperties, attempts: int) -> None:
    """Record a dead letter the re-drive gave up on as rejected (idempotent: the first record stands)."""
    reason = (
        f"billing failed on this order {attempts + 1} times (its consumer crashed or lost its connection holding "
        "it); it is kept in the dead-letter queue for an operator"
    )
    owner = owner_of(properties.headers or {})
    try:
        store = shards.store_for(owner.sub if owner else None)
        if store.record_rejection(properties.message_id, owner, "delivery_limit", reason):
            log.warning("gave up re-driving a dead letter", extra={"message_id": properties.message_id})
    except DatabaseUnavailable as exc:  # the next run records it; the dead letter itself is safe in its queue
        log.warning("could not record a rejection", extra={"message_id": properties.message_id, "reason": str(exc)})
