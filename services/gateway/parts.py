"""The objects the gateway app is made of, reachable with a typed accessor: ``GATEWAY.current().proxy``."""

from __future__ import annotations

from dataclasses import dataclass

from common.extensions import Extension
from gateway.auth import Authenticator
from gateway.order_ids import OrderIdSigner
from gateway.proxy import InventoryProxy
from gateway.publisher import BillingPublisher
from gateway.ratelimit import RateLimiter


@dataclass(frozen=True)
class Gateway:
    """What ``create_app`` builds once per worker."""

    proxy: InventoryProxy
    authenticator: Authenticator
    publisher: BillingPublisher
    billing: InventoryProxy
    """Forwards order-status reads to billing (the same proxy machinery, named ``billing``)."""
    order_ids: OrderIdSigner
    rate_limiter: RateLimiter | None = None
    """None when throttling is off (RATE_LIMIT_*_PER_SECOND unset or 0)."""


#: The app's parts, installed by ``create_app``.
GATEWAY: Extension[Gateway] = Extension("gateway")
