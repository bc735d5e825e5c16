"""Inspect and replay billing's dead-letter queue: ``python -m billing.deadletters list|replay``.

Uses the same RABBITMQ_* / BILLING_QUEUE variables as the service, so it runs wherever billing runs (a shell
in the container, ``make``-started local system, an ECS exec session).

- ``list [--limit N]`` prints one JSON line per dead letter (reason, kind, ids, time, body) and leaves them
  all in place (they are read without acknowledgement, then handed back in their original order).
- ``replay [--limit N] [--message-id ID ...]`` moves dead letters back to the billing queue once the cause is
  fixed: the dead-letter headers are removed, the original message id is kept (so a replay can never create
  a second row), and each is removed from the dead-letter queue only after the broker confirmed the copy.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pika
from pika.adapters.blocking_connection import BlockingChannel

from billing.dead_lettering import DEAD_LETTER_HEADERS
from common.amqp import declare_topology, open_connection
from common.config import RabbitSettings
from contract import messaging


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


def list_dead_letters(settings: RabbitSettings, limit: int) -> list[dict[str, object]]:
    """Up to ``limit`` dead letters as dicts, oldest first; the queue is left unchanged."""
    letters = []
    queue = settings.queue(messaging.BILLING_QUEUE)
    with _channel(settings) as channel:
        while len(letters) < limit:
            method, properties, body = channel.basic_get(queue.dead_letter_queue, auto_ack=False)
            if method is None:
                break
            headers = properties.headers or {}
            letters.append(
                {
                    "message_id": properties.message_id,
                    "request_id": _text(headers.get(messaging.REQUEST_ID)),
                    "kind": _text(headers.get(messaging.DEAD_LETTER_KIND)),
                    "reason": _text(headers.get(messaging.DEAD_LETTER_REASON)),
                    "dead_lettered_at": _text(headers.get(messaging.DEAD_LETTERED_AT)),
                    "body": body.decode("utf-8", "replace"),
                }
            )
    return letters


def replay_dead_letters(settings: RabbitSettings, limit: int, message_ids: set[str] | None = None) -> int:
    """Move up to ``limit`` dead letters (only those in ``message_ids`` when given) back to the billing queue.

    Returns how many were moved. Each copy is confirmed by the broker before its dead letter is acknowledged,
    so a failure halfway leaves every message in one queue or the other (at worst in both, which billing's
    message-id check absorbs).
    """
    moved = 0
    queue = settings.queue(messaging.BILLING_QUEUE)
    with _channel(settings) as channel:
        channel.confirm_delivery()
        while moved < limit:
            method, properties, body = channel.basic_get(queue.dead_letter_queue, auto_ack=False)
            if method is None:
                break
            if message_ids is not None and properties.message_id not in message_ids:
                continue  # left unacknowledged: back in the dead-letter queue when the connection closes
            headers = {k: v for k, v in (properties.headers or {}).items() if k not in DEAD_LETTER_HEADERS}
            properties.headers = headers
            properties.delivery_mode = pika.DeliveryMode.Persistent.value
            channel.basic_publish(messaging.DEFAULT_EXCHANGE, queue.name, body, properties, mandatory=True)
            channel.basic_ack(method.delivery_tag)
            moved += 1
    return moved


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m billing.deadletters", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("list", help="print dead letters as JSON lines, leaving them in the queue")
    show.add_argument("--limit", type=int, default=100)
    replay = commands.add_parser("replay", help="move dead letters back to the billing queue")
    replay.add_argument("--limit", type=int, default=sys.maxsize)
    replay.add_argument("--message-id", action="append", dest="message_ids", help="only this id (repeatable)")
    args = parser.parse_args(argv)

    settings = RabbitSettings.from_env()
    if args.command == "list":
        for letter in list_dead_letters(settings, args.limit):
            print(json.dumps(letter, ensure_ascii=False))
        return 0
    moved = replay_dead_letters(settings, args.limit, set(args.message_ids) if args.message_ids else None)
    queue = settings.queue(messaging.BILLING_QUEUE)
    print(f"replayed {moved} message(s) from {queue.dead_letter_queue} to {queue.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
