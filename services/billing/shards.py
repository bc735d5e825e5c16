"""Billing's shards: one ``OrderStore`` (pool + schema) per billing database, and which one holds a user's orders.

``BILLING_SHARDS=N`` databases; shard 0 is ``billing_db`` (``DATABASE_*``), shard k reads the
``BILLING_SHARD_<k>_DATABASE_*`` variables (``DatabaseSettings.for_shard``). A user's orders, purchases, saga
rows (outbox, inbox) and rejections all live in the shard ``contract.shards.shard_for`` names for the ordering
principal's ``sub`` (:func:`shard_key`); see docs/patterns/sharding.md for why.

A shard that fails is remembered as down for :data:`DOWN_SECONDS`: while it is, the consumer parks that shard's
orders without paying a connection timeout per batch (``billing.batches``).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence

from billing.purchases import ANONYMOUS
from billing.store import OrderStore
from common.config import DatabaseSettings, shard_database_settings
from common.db import ConnectionPool, DatabaseUnavailable
from contract.shards import shard_for

log = logging.getLogger(__name__)

#: How long a shard that failed is skipped before it is tried again.
DOWN_SECONDS = 3.0


def shard_key(owner_sub: str | None) -> str:
    """The key a principal's orders are sharded by: its ``sub``; orders placed without one (a gateway with auth
    off) share the key ``anonymous``, as their events name them (``billing.purchases.ANONYMOUS``)."""
    return owner_sub or ANONYMOUS


def shard_name(shard: int) -> str:
    """The dependency name of a shard on ``/ready`` (``shard-0``, ``shard-1``, ...)."""
    return f"shard-{shard}"


class Shards:
    """The stores of every shard, by shard number, and the routing of a principal to one of them."""

    def __init__(self, stores: Sequence[OrderStore]):
        if not stores:
            raise ValueError("billing needs at least one shard")
        self.stores = list(stores)
        self._down_until = [0.0] * len(self.stores)
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, database: DatabaseSettings, count: int, application_name: str) -> Shards:
        """One pool and store per shard, shard k's settings derived from shard 0's ``database``."""
        return cls([
            OrderStore(ConnectionPool(shard_database_settings(database, k), application_name)) for k in range(count)
        ])

    @property
    def count(self) -> int:
        """How many shards there are (BILLING_SHARDS)."""
        return len(self.stores)

    def index_for(self, owner_sub: str | None) -> int:
        """The shard holding the orders of the principal ``owner_sub``."""
        if self.count == 1:
            return 0  # the map's answer too, without hashing every order of an unsharded billing
        return shard_for(shard_key(owner_sub), self.count)

    def store_for(self, owner_sub: str | None) -> OrderStore:
        """The store of the shard holding ``owner_sub``'s orders."""
        return self.stores[self.index_for(owner_sub)]

    # ------------------------------------------------------------------------------------------------------
    # Health

    def mark_down(self, shard: int, reason: str) -> None:
        """Remember that ``shard`` failed: :meth:`is_down` says so for :data:`DOWN_SECONDS`."""
        with self._lock:
            was_up = self._down_until[shard] < time.monotonic()
            self._down_until[shard] = time.monotonic() + DOWN_SECONDS
        if was_up:
            log.warning("billing shard unavailable", extra={"shard": shard, "reason": reason})

    def is_down(self, shard: int) -> bool:
        """True while ``shard`` failed less than :data:`DOWN_SECONDS` ago."""
        return self._down_until[shard] >= time.monotonic()

    def answers(self, shard: int) -> bool:
        """True when ``shard`` answers now and its schema is in place (False, and marked down, otherwise)."""
        try:
            self.stores[shard].check()
        except DatabaseUnavailable as exc:
            self.mark_down(shard, str(exc))
            return False
        return True

    def check(self) -> None:
        """Migrate and ping every shard; raise ``DatabaseUnavailable`` only when none answers (the consumer's
        start condition: one shard away must not stop the others' orders)."""
        answering = [shard for shard in range(self.count) if self.answers(shard)]
        if not answering:
            raise DatabaseUnavailable(f"none of the {self.count} billing shard(s) answers")

    def any_other_answers(self, shard: int) -> bool:
        """True when a shard other than ``shard`` answers (so ``shard`` alone is away, not the whole system)."""
        return any(not self.is_down(other) and self.answers(other) for other in range(self.count) if other != shard)

    def check_shard(self, shard: int) -> None:
        """Raise ``DatabaseUnavailable`` unless ``shard`` is migrated and answers; a shard that failed moments
        ago fails at once (a probe must not wait for the connect timeout of a host that is gone)."""
        if self.is_down(shard):
            raise DatabaseUnavailable(f"billing shard {shard} failed less than {DOWN_SECONDS:g} s ago")
        try:
            self.stores[shard].check()
        except DatabaseUnavailable as exc:
            self.mark_down(shard, str(exc))
            raise

    def readiness(self) -> dict[str, Callable[[], None]]:
        """One ``/ready`` check per shard (``shard-<k>``): migrated and answering."""
        return {shard_name(k): functools.partial(self.check_shard, k) for k in range(self.count)}

    def close(self) -> None:
        """Close every shard's pooled connections."""
        for store in self.stores:
            store.close()
