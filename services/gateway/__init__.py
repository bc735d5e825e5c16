"""gateway: the public entry point (port 3000).

Forwards ``/api/movies*`` to inventory, publishes ``POST /api/billing`` to RabbitMQ, and serves the OpenAPI
document. ``create_app`` is the application factory gunicorn calls (``gateway:create_app()``).
"""

from __future__ import annotations

from flask import Flask

from common.config import RabbitSettings, env_float, env_str
from common.log import configure_logging
from common.web import init_app
from gateway.auth import Authenticator, AuthSettings
from gateway.docs import docs
from gateway.proxy import InventoryProxy
from gateway.publisher import BillingPublisher
from gateway.routes import api


def create_app() -> Flask:
    """Build the gateway app from environment variables."""
    configure_logging("gateway", env_str("LOG_LEVEL", "INFO"))
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024

    app.extensions["inventory_proxy"] = InventoryProxy(
        env_str("INVENTORY_URL", "http://127.0.0.1:8080"),
        connect_timeout=env_float("UPSTREAM_CONNECT_TIMEOUT", 2.0),
        read_timeout=env_float("UPSTREAM_READ_TIMEOUT", 10.0),
    )
    auth = AuthSettings.from_env()
    if not auth.required:
        app.logger.warning("AUTH_REQUIRED=false: the API accepts unauthenticated requests (never do this on AWS)")
    app.extensions["authenticator"] = Authenticator(auth)
    publisher = BillingPublisher(RabbitSettings.from_env())
    app.extensions["billing_publisher"] = publisher

    init_app(app, "gateway", readiness={"broker": publisher.ping})
    app.register_blueprint(api)
    app.register_blueprint(docs)
    return app
