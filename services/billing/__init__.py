"""billing: stores the orders queued on ``billing_queue`` in PostgreSQL ``billing_db``.

``create_app`` is the application factory gunicorn calls (``billing:create_app()``). Each worker process
that calls it starts one consumer thread; HTTP serves only ``/health``, ``/ready`` and ``/metrics``.
One worker (GUNICORN_WORKERS=1) is recommended and enough for thousands of orders a second; more workers
are safe (they become competing consumers, and the message-id constraint keeps every order single).
Do not run it with gunicorn's ``preload_app``: the consumer thread must start in the worker, not the master.
"""

from __future__ import annotations

from flask import Flask

from billing.consumer import OrderConsumer
from billing.settings import ConsumerSettings
from billing.store import OrderStore
from common.config import DatabaseSettings, RabbitSettings, env_str
from common.db import ConnectionPool
from common.lifecycle import on_shutdown
from common.log import configure_logging
from common.web import init_app


def create_app(
    database: DatabaseSettings | None = None,
    rabbit: RabbitSettings | None = None,
    consumer_settings: ConsumerSettings | None = None,
) -> Flask:
    """Build the billing app and start its consumer; settings come from the environment unless given."""
    configure_logging("billing", env_str("LOG_LEVEL", "INFO"))
    app = Flask(__name__)

    # The consumer needs one connection and /ready another; a small pool is plenty.
    database = database or DatabaseSettings.from_env(default_name="billing_db")
    store = OrderStore(ConnectionPool(database, application_name="billing"))
    consumer = OrderConsumer(
        store,
        rabbit or RabbitSettings.from_env(),
        consumer_settings or ConsumerSettings.from_env(),
    )
    app.extensions["billing_consumer"] = consumer
    app.extensions["billing_store"] = store

    init_app(app, "billing", readiness={"database": store.check, "broker": consumer.check_ready})

    consumer.start()
    # gunicorn's worker_exit hook (common.gunicorn_config) runs this after SIGTERM.
    on_shutdown(consumer.stop)
    on_shutdown(store.close)
    return app
