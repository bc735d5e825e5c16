"""Inspect and replay billing's dead-letter queues: ``python -m billing.deadletters list|replay``.

Uses the same RABBITMQ_* / BILLING_QUEUE / BILLING_EXPRESS_QUEUE variables as the service, so it runs wherever
billing runs (a shell in the container, ``make``-started local system, an ECS exec session). Every queue of
the contract has its dead-letter queue (``billing.orders.express.dlq`` first, then ``billing.orders.dlq``);
both commands cover them all, and ``--priority express|standard`` narrows them to one.

Two kinds of dead letters share a queue: those billing moved there itself (the reason is in billing's
``x-dead-letter-*`` headers) and those the BROKER moved there past the queue's delivery limit (a consumer
received them again and again and never acknowledged them: it crashed or lost its connection on them each
time). The latter carry only RabbitMQ's ``x-death`` header; they are listed with its reason (``kind``
``delivery_limit``) and a sentence saying what it means. The legacy classic queue's dead-letter queue
(``billing_queue.dlq``), while it exists, is listed and replayed as well.

- ``list [--limit N]`` prints one JSON line per dead letter (reason, kind, ids, time, queues, body) and leaves
  them all in place (they are read without acknowledgement, then handed back in their original order).
- ``replay [--limit N] [--message-id ID ...]`` moves dead letters back to the queue they died on (an express
  order to the express queue; never to the legacy one) once the cause is fixed: the dead-letter headers are
  removed, the original message id is kept (so a replay can never create a second row), and each is removed
  from the dead-letter queue only after the broker confirmed the copy.

The leader's re-drive job (``billing.jobs``) calls :func:`replay_dead_letters` too, selecting only the
transient dead letters (:func:`is_transient`) and counting each re-drive in the ``x-redrive-attempts`` header,
which ``list`` shows as ``redrive_attempts``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pika
from pika.adapters.blocking_connection import BlockingChannel

from billing.dead_lettering import DEAD_LETTER_HEADERS
from common.amqp import declare_topology, open_connection, queue_exists
from common.config import RabbitSettings
from contract import messaging
from contract.messaging import PRIORITY_QUEUES, Queue

#: Headers removed on replay: billing's reasons, and the broker's delivery count (the queue sets it anew).
_REMOVED_ON_REPLAY = (*DEAD_LETTER_HEADERS, messaging.BROKER_DELIVERY_COUNT, messaging.BILLING_SHARD)


@contextmanager
def _channel(settings: RabbitSettings) -> Iterator[BlockingChannel]:
    connection = open_connection(settings)
    try:
        channel = connection.channel()
        declare_topology(channel, settings)
        yield channel
    finally:
        # Closing hands every unacknowledged dead letter back to the queue, in its original position.
        connection.close()


def _text(value: object) -> object:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _dead_letter_queues(channel: BlockingChannel, queue: Queue) -> list[str]:
    """The queue's dead-letter queue, then the legacy classic queue's one if it still exists."""
    names = [queue.dead_letter_queue]
    legacy = queue.legacy_dead_letter_queue
    if legacy and queue_exists(channel.connection, legacy):
        names.append(legacy)
    return names


def _queues(settings: RabbitSettings, priority: str | None) -> list[Queue]:
    """The queues (as named on this broker) whose dead letters are handled: one priority's, or all, most
    urgent first."""
    priorities = [priority] if priority else list(PRIORITY_QUEUES)
    return [settings.queue(PRIORITY_QUEUES[name]) for name in priorities]


def _latest_death(headers: dict) -> dict:
    """The newest entry of RabbitMQ's ``x-death`` header (the list is kept newest first), or {}."""
    deaths = headers.get(messaging.BROKER_DEATHS)
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return deaths[0]
    return {}


def redrive_attempts(headers: dict) -> int:
    """How often the re-drive job already moved this dead letter back to its queue (0 when never)."""
    try:
        return max(0, int(headers.get(messaging.REDRIVE_ATTEMPTS) or 0))
    except (TypeError, ValueError):
        return 0


def parked_shard(headers: dict) -> int | None:
    """The billing shard a dead letter was parked for (kind ``shard_unavailable``: its shard was away), or None."""
    if _text(headers.get(messaging.DEAD_LETTER_KIND)) != messaging.SHARD_UNAVAILABLE_KIND:
        return None
    shard = headers.get(messaging.BILLING_SHARD)
    return shard if isinstance(shard, int) and not isinstance(shard, bool) and shard >= 0 else 0


def is_transient(headers: dict) -> bool:
    """True for a dead letter the broker moved past the delivery limit and billing never judged: its consumer
    crashed or lost its connection while holding it, which may not happen again; and for one billing parked
    because its shard was away (:func:`parked_shard`). A message billing dead-lettered itself for its content
    (``x-dead-letter-kind``: invalid data) is permanent, whatever its history."""
    if parked_shard(headers) is not None:
        return True
    if headers.get(messaging.DEAD_LETTER_KIND) is not None:
        return False
    return _text(_latest_death(headers).get("reason")) == messaging.DELIVERY_LIMIT_REASON


def describe(properties: pika.BasicProperties, body: bytes, dead_letter_queue: str, queue: Queue) -> dict:
    """One dead letter as a dict: why it is there (billing's reason, else the broker's ``x-death``), its ids,
    when, the queue it came from and the dead-letter queue holding it, and its body."""
    headers = properties.headers or {}
    kind = _text(headers.get(messaging.DEAD_LETTER_KIND))
    reason = _text(headers.get(messaging.DEAD_LETTER_REASON))
    when = _text(headers.get(messaging.DEAD_LETTERED_AT))
    origin = _text(headers.get(messaging.ORIGINAL_QUEUE))
    death = _latest_death(headers)
    if kind is None and death:
        # Dead-lettered by the broker, not by billing: say what its reason means.
        kind = _text(death.get("reason")) or "unknown"
        origin = _text(death.get("queue"))
        times = death.get("count", 1)
        if kind == messaging.DELIVERY_LIMIT_REASON:
            reason = (
                f"delivered more than {queue.delivery_limit} times without an acknowledgement (the consumer "
                f"crashed or lost its connection while holding it, each time); moved here by the broker "
                f"({times} time(s))"
            )
        else:
            reason = f"moved here by the broker ({kind}, {times} time(s))"
        stamp = death.get("time")
        when = stamp.isoformat(timespec="milliseconds") if hasattr(stamp, "isoformat") else _text(stamp)
    elif kind is None:
        kind, reason = "unknown", "no dead-letter headers: published to the dead-letter queue directly?"
    return {
        "message_id": properties.message_id,
        "request_id": _text(headers.get(messaging.REQUEST_ID)),
        "kind": kind,
        "reason": reason,
        "dead_lettered_at": when,
        "original_queue": origin,
        "dead_letter_queue": dead_letter_queue,
        "redrive_attempts": redrive_attempts(headers),
        "body": body.decode("utf-8", "replace"),
    }


def list_dead_letters(
    settings: RabbitSettings, limit: int, priority: str | None = None
) -> list[dict[str, object]]:
    """Up to ``limit`` dead letters as dicts (:func:`describe`), each queue's oldest first, of every queue (or
    of ``priority``'s); the queues are left unchanged."""
    letters: list[dict[str, object]] = []
    with _channel(settings) as channel:
        for queue in _queues(settings, priority):
            for dead_letter_queue in _dead_letter_queues(channel, queue):
                while len(letters) < limit:
                    method, properties, body = channel.basic_get(dead_letter_queue, auto_ack=False)
                    if method is None:
                        break
                    letters.append(describe(properties, body, dead_letter_queue, queue))
    return letters


def replay_dead_letters(
    settings: RabbitSettings,
    limit: int,
    message_ids: set[str] | None = None,
    priority: str | None = None,
    *,
    select: Callable[[pika.BasicProperties], bool] | None = None,
    count_attempt: bool | Callable[[dict], bool] = False,
    scan_limit: int | None = None,
    queues: list[Queue] | None = None,
) -> int:
    """Move up to ``limit`` dead letters (only those in ``message_ids``, and only those ``select`` accepts
    (it is given each one's properties), when given) back to their queue.

    Returns how many were moved. Each dead-letter queue is replayed into the queue it belongs to, as named on
    this broker (the legacy classic queue's into the standard queue): ``priority``'s alone when given, else
    every queue, most urgent first. Each copy is confirmed by the broker before its dead
    letter is acknowledged, so a failure halfway leaves every message in one queue or the other (at worst in
    both, which billing's message-id check absorbs). ``count_attempt`` adds one to the copy's
    ``x-redrive-attempts`` (a callable decides per dead letter, given its headers); ``scan_limit`` bounds how
    many dead letters are looked at; ``queues`` replaces the priority queues (billing's saga queue).
    """
    queues = queues if queues is not None else _queues(settings, priority)
    moved = scanned = 0
    with _channel(settings) as channel:
        channel.confirm_delivery()
        for target in queues:
            for dead_letter_queue in _dead_letter_queues(channel, target):
                while moved < limit and (scan_limit is None or scanned < scan_limit):
                    method, properties, body = channel.basic_get(dead_letter_queue, auto_ack=False)
                    if method is None:
                        break
                    scanned += 1
                    headers = properties.headers or {}
                    if (message_ids is not None and properties.message_id not in message_ids) or (
                        select is not None and not select(properties)
                    ):
                        continue  # left unacknowledged: back in the dead-letter queue when the connection closes
                    # x-death stays: if the message dies again, the history shows how often it did.
                    properties.headers = {k: v for k, v in headers.items() if k not in _REMOVED_ON_REPLAY}
                    if count_attempt(headers) if callable(count_attempt) else count_attempt:
                        properties.headers[messaging.REDRIVE_ATTEMPTS] = redrive_attempts(headers) + 1
                    properties.delivery_mode = pika.DeliveryMode.Persistent.value
                    channel.basic_publish(messaging.DEFAULT_EXCHANGE, target.name, body, properties, mandatory=True)
                    channel.basic_ack(method.delivery_tag)
                    moved += 1
    return moved


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m billing.deadletters", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("list", help="print dead letters as JSON lines, leaving them in the queue")
    show.add_argument("--limit", type=int, default=100)
    replay = commands.add_parser("replay", help="move dead letters back to the queue they died on")
    replay.add_argument("--limit", type=int, default=sys.maxsize)
    replay.add_argument("--message-id", action="append", dest="message_ids", help="only this id (repeatable)")
    for command in (show, replay):
        command.add_argument("--priority", choices=list(PRIORITY_QUEUES), help="only this priority's queue")
    args = parser.parse_args(argv)

    settings = RabbitSettings.from_env()
    if args.command == "list":
        for letter in list_dead_letters(settings, args.limit, args.priority):
            print(json.dumps(letter, ensure_ascii=False))
        return 0
    ids = set(args.message_ids) if args.message_ids else None
    moved = replay_dead_letters(settings, args.limit, ids, args.priority)
    names = ", ".join(f"{queue.dead_letter_queue} to {queue.name}" for queue in _queues(settings, args.priority))
    print(f"replayed {moved} message(s) ({names})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
