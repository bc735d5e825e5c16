"""gateway: the public entry point (port 3000).

Forwards ``/api/movies*`` to inventory, publishes ``POST /api/billing`` to RabbitMQ, forwards the order-status
reads ``/api/orders*`` to billing (after checking the signed order id), and serves the OpenAPI document.
``create_app`` is the application factory gunicorn calls (``gateway:create_app()``).
"""

from __future__ import annotations

from flask import Flask

from common.config import RabbitSettings, env_float, env_str
from common.lifecycle import on_shutdown
from common.log import configure_logging
from common.web import init_app
from contract import environment as env
from contract.limits import MAX_REQUEST_BYTES
from contract.services import GATEWAY as SERVICE
from gateway.auth import Authenticator, AuthSettings
from gateway.docs import docs
from gateway.order_ids import OrderIdSigner
from gateway.parts import GATEWAY, Gateway
from gateway.proxy import InventoryProxy
from gateway.publisher import BillingPublisher
from gateway.ratelimit import RateLimiter
from gateway.routes import api


def create_app() -> Flask:
    """Build the gateway app from environment variables."""
    configure_logging(SERVICE.name, env_str(env.LOG_LEVEL))
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES

    proxy = InventoryProxy(
        env_str(env.INVENTORY_URL),
        connect_timeout=env_float(env.UPSTREAM_CONNECT_TIMEOUT),
        read_timeout=env_float(env.UPSTREAM_READ_TIMEOUT),
    )
    auth = AuthSettings.from_env()
    if not auth.required:
        app.logger.warning("AUTH_REQUIRED=false: the API accepts unauthenticated requests (never do this on AWS)")
    billing = InventoryProxy(
        env_str(env.BILLING_URL),
        connect_timeout=env_float(env.UPSTREAM_CONNECT_TIMEOUT),
        read_timeout=env_float(env.UPSTREAM_READ_TIMEOUT),
        name="billing",
    )
    order_ids = OrderIdSigner.from_setting(env_str(env.ORDER_ID_KEY), auth_required=auth.required)
    publisher = BillingPublisher(RabbitSettings.from_env())
    rate_limiter = RateLimiter.from_env()
    GATEWAY.install(
        app,
        Gateway(
            proxy=proxy,
            authenticator=Authenticator(auth),
            publisher=publisher,
            billing=billing,
            order_ids=order_ids,
            rate_limiter=rate_limiter,
        ),
    )

    on_shutdown(publisher.close)  # flush the outstanding confirms, then close the connection
    # The public edge starts every trace itself: a caller's traceparent is not continued.
    init_app(app, SERVICE.name, readiness={"broker": publisher.ping}, trust_trace_context=False)
    app.register_blueprint(api)
    app.register_blueprint(docs)
    return app
