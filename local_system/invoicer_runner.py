"""The local stand-in for Lambda's Amazon MQ event source: ``python -m local_system.invoicer_runner``.

Started by the ``invoicer`` part (local_system/invoicer_part.py) with the virtualenv's Python, because it runs
the invoicer itself (fpdf2, boto3, pika); the rest of local_system stays standard-library only and never
imports this module. One consumer of ``invoicer.saga`` on the local RabbitMQ, prefetch 1 (the Lambda's batch
size): each delivery goes to the Lambda's own :func:`functions.invoices.handler.handle` (store the PDF, publish
``invoice.ready`` with confirms, on a channel of the same connection) and is acknowledged after it returned. A
malformed message is moved to ``invoicer.saga.dlq`` with the reason (as the Lambda does), then acknowledged;
any other failure (the emulator or the broker away) drops the connection without an acknowledgement, so the
broker redelivers it, and the runner reconnects with backoff. ``GET /health`` on 127.0.0.1:<port> answers 200
with the counters while the consumer thread runs.
"""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

import pika.exceptions

from contract import saga
from functions.invoices.broker import BrokerSettings, Publisher, connect, declare_saga
from functions.invoices.events import Malformed
from functions.invoices.handler import handle
from functions.invoices.store import log
from local_system.runner_health import health_server

#: The Lambda mapping's batch size: one message at a time.
PREFETCH = 1
#: How long one wait for deliveries lasts: SIGTERM stops the runner within about this many seconds.
POLL_SECONDS = 1
RECONNECT_INITIAL, RECONNECT_MAX = 0.5, 10.0


class InvoicerLoop(threading.Thread):
    """Consumes ``queue`` and runs the invoicer on each delivery; reconnects after any failure."""

    def __init__(self, settings: BrokerSettings, stopping: threading.Event, *,
                 queue: saga.SagaQueue = saga.INVOICER_EVENTS, exchange: str = saga.EXCHANGE):
        super().__init__(name="invoicer", daemon=True)
        self.settings, self.stopping, self.queue, self.exchange = settings, stopping, queue, exchange
        self.counts = {"invoices": 0, "dead_lettered": 0, "failures": 0}
        self.consuming = False
        self.last_error: str | None = None

    def run(self) -> None:
        delay = RECONNECT_INITIAL
        while not self.stopping.is_set():
            try:
                self.consume()
                delay = RECONNECT_INITIAL
            except Exception as exc:  # noqa: BLE001 - the emulator, the broker or the secret away: retry
                self.counts["failures"] += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log("WARNING", "invoicer interrupted; the message in hand is redelivered", error=self.last_error)
                self.stopping.wait(delay)
                delay = min(delay * 2, RECONNECT_MAX)

    def consume(self) -> None:
        """One connection's life: declare, consume until stopped (or until something raises)."""
        connection = connect(self.settings)
        try:
            publisher = Publisher(connection=connection, exchange=self.exchange)
            channel = connection.channel()
            declare_saga(channel, self.exchange)
            channel.basic_qos(prefetch_count=PREFETCH)
            channel.basic_consume(self.queue.name, lambda ch, method, properties, body: self.on_message(
                ch, method, properties, body, publisher))
            self.consuming = True
            log("INFO", "invoicer consuming", queue=self.queue.name)
            while not self.stopping.is_set():
                connection.process_data_events(time_limit=POLL_SECONDS)
        finally:
            self.consuming = False
            try:
                if connection.is_open:
                    connection.close()  # unacknowledged deliveries go back to the queue
            except (pika.exceptions.AMQPError, OSError):
                pass

    def on_message(self, channel, method, properties, body: bytes, publisher: Publisher) -> None:
        """The invoicer's job for one delivery, then the acknowledgement (never before)."""
        try:
            handle(body, publisher, message_id=properties.message_id, routing_key=method.routing_key,
                   headers=properties.headers)
            self.counts["invoices"] += 1
        except Malformed as exc:
            log("ERROR", "malformed message dead-lettered", queue=self.queue.name, kind=exc.kind, error=str(exc))
            publisher.dead_letter(self.queue.name, body, properties.headers or {}, kind=exc.kind, reason=str(exc),
                                  message_id=properties.message_id, content_type=properties.content_type)
            self.counts["dead_lettered"] += 1
        channel.basic_ack(method.delivery_tag)


def _report(loop: InvoicerLoop):
    def report() -> tuple[bool, dict[str, Any]]:
        details = {"queue": loop.queue.name, "consuming": loop.consuming, **loop.counts, "last_error": loop.last_error}
        return loop.is_alive(), details

    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_system.invoicer_runner", description=__doc__)
    parser.add_argument("--profile", choices=("dev", "test"), required=True)
    parser.add_argument("--port", type=int, required=True, help="the /health endpoint's port")
    args = parser.parse_args(argv)
    stopping = threading.Event()
    loop = InvoicerLoop(BrokerSettings.from_env(), stopping)
    server = health_server(args.port, _report(loop))
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    loop.start()
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    log("INFO", "invoicer running", profile=args.profile, health=f"http://127.0.0.1:{args.port}/health")
    while not stopping.wait(1):
        pass
    server.shutdown()
    loop.join(POLL_SECONDS + 30)  # a message in hand finishes (stored, announced, acknowledged)
    log("INFO", "invoicer stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
