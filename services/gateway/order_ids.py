"""Order ids the gateway issues and can recognise again: the asynchronous request-reply pattern's status handle.

An order id is also the AMQP ``message_id`` of the order (billing's idempotency key), so billing stores it
with the row. It is 64 lowercase hex digits::

    <32: random> <16: issue tag> <16: owner tag>

- the **issue tag** is HMAC-SHA256(key, "issued" | random), truncated to 64 bits: only the gateway (which holds
  the key) can make an id that carries a valid one, so an id nobody was given is recognised as made up
  (``404``) instead of being reported as queued forever;
- the **owner tag** is HMAC-SHA256(key, "owner" | random | sub of the principal who posted it), truncated: the
  id is bound to its owner without any lookup, so a caller asking about someone else's order gets the same
  ``404`` as for a made-up id (nothing tells them the order exists).

Principals with ``billing.read`` skip the owner check but not the issue check. 64-bit tags: guessing one takes
2^63 requests on average, each authenticated and logged. The key never leaves the gateway (billing only sees
ids the gateway verified) and is never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets

log = logging.getLogger(__name__)

#: What an order id looks like.
ORDER_ID = re.compile(r"[0-9a-f]{64}")
_RANDOM_HEX = 32
_TAG_BYTES = 8
#: Shortest key accepted: 256 bits.
MIN_KEY_BYTES = 32


class OrderIdSigner:
    """Issues and verifies order ids with one secret key."""

    def __init__(self, key: bytes):
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the order id key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key

    @classmethod
    def from_setting(cls, text: str, *, auth_required: bool) -> OrderIdSigner:
        """The signer for ``ORDER_ID_KEY`` (hex). Empty is allowed only with auth off: a per-process key."""
        if not text:
            if auth_required:
                raise ValueError("ORDER_ID_KEY is required when authentication is on")
            log.warning("ORDER_ID_KEY unset: order ids are signed with a per-process key (local experiments only)")
            return cls(secrets.token_bytes(MIN_KEY_BYTES))
        try:
            key = bytes.fromhex(text.strip())
        except ValueError:
            raise ValueError("ORDER_ID_KEY must be hex digits") from None
        return cls(key)

    def _tag(self, *parts: str) -> str:
        message = "\x00".join(parts).encode("utf-8")
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[: _TAG_BYTES * 2]

    def issue(self, owner: str) -> str:
        """A new order id bound to the principal ``owner`` (its ``sub``; "" when auth is off)."""
        random = secrets.token_hex(_RANDOM_HEX // 2)
        return random + self._tag("issued", random) + self._tag("owner", random, owner)

    def verify(self, order_id: str, owner: str, *, any_owner: bool = False) -> bool:
        """True when the gateway issued ``order_id`` to ``owner`` (to anyone, with ``any_owner``)."""
        if not ORDER_ID.fullmatch(order_id):
            return False
        random, issued, bound = order_id[:32], order_id[32:48], order_id[48:]
        if not hmac.compare_digest(issued, self._tag("issued", random)):
            return False
        return any_owner or hmac.compare_digest(bound, self._tag("owner", random, owner))
