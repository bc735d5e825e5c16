"""inventory: CRUD on movies, stored in PostgreSQL ``movies_db``.

``create_app`` is the application factory gunicorn calls (``inventory:create_app()``); it builds objects and
connects to nothing. The schema is migrated when the worker starts (a ``common.lifecycle`` start hook) or on
first use. With POSTER_RESULTS_QUEUE_URL set, each worker also starts the poster results consumer thread
(``inventory.poster_results``) from a start hook; without it no boto3 is imported at all.

The purchase saga (issue 15): each worker also runs a ``SagaConsumer`` on ``inventory.saga`` (reserving and
releasing stock, ``inventory.reservations``) and an ``OutboxRelay`` publishing movies_db's outbox, both started
by start hooks. Several workers are safe: they are competing consumers of one quorum queue (each event goes to
one of them; the inbox and a per-order lock make a redelivered or concurrent event harmless), and the relays
share the outbox through ``SELECT ... FOR UPDATE SKIP LOCKED`` (no row published by two at once).
Inventory keeps serving movies while RabbitMQ is away: ``/ready`` checks the database only (the saga is
asynchronous: placements wait in the durable queue, emitted events in the outbox) and reports the saga's state
under ``"saga"`` in its body and in ``/health``'s.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from flask import Flask

from common import claim_check
from common.config import DatabaseSettings, RabbitSettings, env_int, env_str
from common.db import ConnectionPool, Schema
from common.extensions import Extension
from common.lifecycle import on_shutdown, on_start
from common.log import configure_logging
from common.outbox_relay import OutboxRelay
from common.saga_consumer import SagaConsumer
from common.web import init_app
from contract import environment as env
from contract import saga
from contract.limits import MAX_REQUEST_BYTES
from contract.services import INVENTORY
from inventory import db, poster_results, posters, reservations
from inventory.poster_results import PosterResultsConsumer
from inventory.routes import movies


@dataclass(frozen=True)
class Saga:
    """The worker's saga threads (started by start hooks; tests start them explicitly)."""

    consumer: SagaConsumer
    relay: OutboxRelay


#: The app's saga threads, installed by ``create_app``: ``SAGA.of(app).consumer``.
SAGA: Extension[Saga] = Extension("inventory.saga")


def saga_consumer_of(
    pool: ConnectionPool,
    schema: Schema,
    rabbit: RabbitSettings,
    *,
    queue: saga.SagaQueue = saga.INVENTORY_EVENTS,
    exchange: str = saga.EXCHANGE,
    claim_check_fetch: claim_check.Fetch | None = None,
) -> SagaConsumer:
    """Inventory's consumer of ``inventory.saga`` (tests name a queue and exchange of their own).

    Its database check migrates too: a worker started while the database was down must not take events before
    the inbox and reservations tables exist (it would dead-letter them for a missing table)."""

    return SagaConsumer(
        pool, rabbit, queue, reservations.apply, exchange=exchange,
        claim_check_fetch=claim_check_fetch, database_check=schema.check,
    )


def create_app(database: DatabaseSettings | None = None, rabbit: RabbitSettings | None = None) -> Flask:
    """Build the inventory app; settings come from the environment unless given (tests pass their own)."""
    configure_logging(INVENTORY.name, env_str(env.LOG_LEVEL))
    app = Flask(__name__)
    # Movies are small; anything bigger than the gateway forwards is a mistake or an attack, answered 413
    # before it is read.
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.config[posters.UPLOAD_BUCKET_CONFIG] = posters.upload_bucket()  # read once, not per request

    settings = database or DatabaseSettings.from_env(default_name=INVENTORY.database)
    pool = ConnectionPool(settings, application_name=INVENTORY.name)
    schema = Schema(pool, INVENTORY.name, db.MIGRATIONS)
    store = db.STORE.install(app, db.MovieStore(pool, schema))

    def migrate_early() -> None:
        # Migrating when the worker starts keeps the first request fast; a database that is down then is
        # no reason to refuse to start: /ready says so, and the first use migrates.
        try:
            schema.ensure()
        except Exception:  # noqa: BLE001
            app.logger.warning("database not reachable at start-up; schema will be migrated on first use")

    rabbit = rabbit or RabbitSettings.from_env()
    store_claim, fetch_claim = claim_check.from_env()  # events over 64 KiB by claim check (CLAIM_CHECK_BUCKET)
    relay = OutboxRelay(pool, rabbit, claim_check_store=store_claim)
    saga_consumer = saga_consumer_of(pool, schema, rabbit, claim_check_fetch=fetch_claim)
    SAGA.install(app, Saga(saga_consumer, relay))

    def saga_state() -> dict[str, object]:
        # Attributes only (no I/O): /health calls it too.
        return {"saga": {
            "consuming": saga_consumer.is_consuming,
            "consumer_problem": saga_consumer.last_problem or None,
            "relay_problem": relay.last_problem or None,
        }}

    # Readiness is the database only: inventory must keep serving movies while the broker is away (see above).
    init_app(app, INVENTORY.name, readiness={"database": store.check}, details=saga_state)
    app.register_blueprint(movies)
    # gunicorn's post_worker_init hook (common.gunicorn_config) runs it: the factory itself connects to nothing.
    on_start(migrate_early)
    on_start(relay.start)
    on_start(saga_consumer.start)
    on_shutdown(pool.close)
    # Shutdown hooks run newest first: the consumer stops (after the event in hand), then the relay (after its
    # batch), then the pool closes.
    on_shutdown(relay.stop)
    on_shutdown(saga_consumer.stop)
    results_queue = env_str(env.POSTER_RESULTS_QUEUE_URL)
    if results_queue:
        consumer = PosterResultsConsumer(store, results_queue, env_int(env.POSTER_RESULTS_WAIT_SECONDS, minimum=1))
        on_start(consumer.start)
        # Shutdown hooks run newest first: the consumer stops before the pool closes. It waits for the long poll
        # in flight (up to its wait time): a worker that exited in the middle of one would leave the receive
        # pending in SQS, which then hands the next result to nobody until its visibility timeout has passed.
        on_shutdown(functools.partial(consumer.stop, timeout=poster_results.WAIT_SECONDS + 2))
    return app
