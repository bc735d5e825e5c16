"""billing: stores the orders queued on the billing queue in PostgreSQL ``billing_db``.

``create_app`` is the application factory gunicorn calls (``billing:create_app()``); it only builds objects.
The consumer thread is started by gunicorn's ``post_worker_init`` hook (``common.gunicorn_config`` runs the
start hooks of ``common.lifecycle``), in the worker process; tests start it explicitly with
``BILLING.of(app).consumer.start()``. HTTP serves ``/health``, ``/ready``, ``/metrics`` and, for the gateway
only, the order-status reads ``/orders`` (``billing.routes``).

Billing runs exactly one gunicorn worker per task (``contract.services.BILLING.single_worker``, enforced by
``common.gunicorn_config``): the work is done by one consumer thread per process and scales out by tasks, so
more workers would only split the prefetch and the batches. Several consumers would still be safe (competing
consumers; the message-id constraint keeps every order single).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from billing.consumer import OrderConsumer
from billing.order_status import ORDER_READER
from billing.routes import orders
from billing.settings import ConsumerSettings
from billing.store import OrderStore
from common.config import DatabaseSettings, RabbitSettings, env_str
from common.db import ConnectionPool
from common.extensions import Extension
from common.lifecycle import on_shutdown, on_start
from common.log import configure_logging
from common.web import init_app
from contract import environment as env
from contract.services import BILLING as SERVICE


@dataclass(frozen=True)
class Billing:
    """What the billing app is made of."""

    consumer: OrderConsumer


#: The app's parts, installed by ``create_app``: ``BILLING.of(app).consumer``.
BILLING: Extension[Billing] = Extension("billing")


def create_app(
    database: DatabaseSettings | None = None,
    rabbit: RabbitSettings | None = None,
    consumer_settings: ConsumerSettings | None = None,
) -> Flask:
    """Build the billing app; settings come from the environment unless given. Starts nothing (see above)."""
    configure_logging(SERVICE.name, env_str(env.LOG_LEVEL))
    app = Flask(__name__)

    # The consumer needs one connection and /ready another; a small pool is plenty.
    database = database or DatabaseSettings.from_env(default_name=SERVICE.database)
    store = OrderStore(ConnectionPool(database, application_name=SERVICE.name))
    consumer = OrderConsumer(
        store,
        rabbit or RabbitSettings.from_env(),
        consumer_settings or ConsumerSettings.from_env(),
    )
    BILLING.install(app, Billing(consumer))
    ORDER_READER.install(app, store.reader())
    app.register_blueprint(orders)

    init_app(app, SERVICE.name, readiness={"database": store.check, "broker": consumer.check_ready})

    # gunicorn's post_worker_init and worker_exit hooks (common.gunicorn_config) run these.
    on_start(consumer.start)
    on_shutdown(consumer.stop)
    on_shutdown(store.close)
    return app
