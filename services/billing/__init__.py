"""billing: stores the orders queued on the billing queue in PostgreSQL ``billing_db`` and its shards.

``BILLING_SHARDS`` databases (``billing.shards``; docs/patterns/sharding.md): each user's orders live in the
shard ``contract.shards.shard_for`` names for the ordering principal; every shard gets the same migrations.

``create_app`` is the application factory gunicorn calls (``billing:create_app()``); it only builds objects.
The consumer thread is started by gunicorn's ``post_worker_init`` hook (``common.gunicorn_config`` runs the
start hooks of ``common.lifecycle``), in the worker process; tests start it explicitly with
``BILLING.of(app).consumer.start()``. HTTP serves ``/health``, ``/ready``, ``/metrics`` and, for the gateway
only, the order-status reads ``/orders`` (``billing.routes``).

Billing runs exactly one gunicorn worker per task (``contract.services.BILLING.single_worker``, enforced by
``common.gunicorn_config``): the work is done by one consumer thread per process and scales out by tasks, so
more workers would only split the prefetch and the batches. Several consumers would still be safe (competing
consumers; the message-id constraint keeps every order single).

Purchases (issue 15) run a saga: ``billing.saga_runner`` starts an outbox relay and the ``billing.saga``
consumer (``billing.saga``) with the consumer; ``/ready`` names ``saga`` while that consumer is not attached.

Periodic jobs (re-driving transient dead letters, per-minute aggregates, purchase timeouts) run once per
system, not per task: every process campaigns for a PostgreSQL advisory lock (``billing.leader``) and only the
leader runs them (``billing.jobs``). ``/health`` and ``/ready`` say ``"leader": true|false``; so does the
``billing_leader`` gauge.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from billing.consumer import OrderConsumer
from billing.jobs import JobRunner
from billing.leader import LeaderElection
from billing.order_status import ORDER_READER
from billing.routes import orders
from billing.saga_runner import SagaRunner
from billing.settings import ConsumerSettings, JobSettings
from billing.shard_reads import ShardedReader
from billing.shards import Shards
from common.config import ConfigError, DatabaseSettings, RabbitSettings, env_int, env_str
from common.extensions import Extension
from common.lifecycle import on_shutdown, on_start
from common.log import configure_logging
from common.web import init_app
from contract import environment as env
from contract.services import BILLING as SERVICE
from contract.shards import MAX_SHARDS


@dataclass(frozen=True)
class Billing:
    """What the billing app is made of."""

    consumer: OrderConsumer
    election: LeaderElection
    jobs: JobRunner
    saga: SagaRunner
    """The outbox relay and the ``billing.saga`` consumer (``saga.relay``, ``saga.consumer``)."""


#: The app's parts, installed by ``create_app``: ``BILLING.of(app).consumer``.
BILLING: Extension[Billing] = Extension("billing")


def create_app(
    database: DatabaseSettings | None = None,
    rabbit: RabbitSettings | None = None,
    consumer_settings: ConsumerSettings | None = None,
    job_settings: JobSettings | None = None,
) -> Flask:
    """Build the billing app; settings come from the environment unless given. Starts nothing (see above)."""
    configure_logging(SERVICE.name, env_str(env.LOG_LEVEL))
    app = Flask(__name__)

    # The consumer needs one connection and /ready another; a small pool per shard is plenty.
    database = database or DatabaseSettings.from_env(default_name=SERVICE.database)
    shards = Shards.from_settings(database, shard_count(), SERVICE.name)
    rabbit = rabbit or RabbitSettings.from_env()
    consumer = OrderConsumer(shards, rabbit, consumer_settings or ConsumerSettings.from_env())
    job_settings = job_settings or JobSettings.from_env()
    # Its own connection, not the pool's: the advisory lock belongs to the session that took it.
    election = LeaderElection(database, SERVICE.name, job_settings.leader_check)
    jobs = JobRunner(
        election, shards, rabbit, job_settings.interval, job_settings.redrive_max_attempts,
        purchase_timeout=job_settings.purchase_timeout,
    )
    saga = SagaRunner(shards, rabbit)
    BILLING.install(app, Billing(consumer, election, jobs, saga))

    # One shard: the one database, named as it always was. Several: each shard is its own dependency, and
    # /ready stays 200 while one of them answers (ECS must not replace every task for one shard away).
    databases = {"database": shards.stores[0].check} if shards.count == 1 else shards.readiness()
    init_app(
        app,
        SERVICE.name,
        readiness={**databases, "broker": consumer.check_ready, "saga": saga.check_ready},
        details=lambda: {"leader": election.is_leader, "shards": shards.count},
        any_of=tuple(databases) if shards.count > 1 else (),
    )
    ORDER_READER.install(app, ShardedReader(shards))
    app.register_blueprint(orders)

    # gunicorn's post_worker_init and worker_exit hooks (common.gunicorn_config) run these; shutdown hooks
    # run newest first: jobs stop, then the election steps down (freeing the lock at once), then the consumer,
    # then the saga's consumer and relay (the relay last: it publishes what the others committed).
    on_start(consumer.start)
    on_start(saga.start)
    on_start(election.start)
    on_start(jobs.start)
    on_shutdown(shards.close)
    on_shutdown(saga.stop)
    on_shutdown(consumer.stop)
    on_shutdown(election.stop)
    on_shutdown(jobs.stop)
    return app


def shard_count() -> int:
    """BILLING_SHARDS, checked against the map's bounds (``contract.shards.MAX_SHARDS``)."""
    count = env_int(env.BILLING_SHARDS, minimum=1)
    if count > MAX_SHARDS:
        raise ConfigError(f"BILLING_SHARDS must be at most {MAX_SHARDS}, got {count}")
    return count
