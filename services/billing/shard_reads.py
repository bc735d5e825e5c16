"""Order reads over the shards: a customer's reads go to their own shard only.

The gateway names the caller in ``X-Principal-Sub`` (set by itself after verifying the token; a caller's copy is
dropped) and has already checked that the order id was issued to that caller, so a customer's order is in the
shard of their own ``sub`` (``billing.shards.Shards.index_for``): status, invoice and list each ask that one
shard. A shard that is away raises ``DatabaseUnavailable`` (503 with Retry-After, ``common.web``).

A principal with ``billing.read`` (``read_all``) may read anyone's order, and the id does not say whose it is:
its own shard first, then the others. Its list of everyone's orders walks the shards one after another (each
newest first), with a cursor that names the shard (``s1:<shard>:<id>``); customers' cursors are unchanged.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from billing.order_status import InvalidCursor, OrderReader, Reader, decode_cursor
from billing.shards import Shards
from common.db import DatabaseUnavailable

_SHARD_CURSOR_PREFIX = "s1:"


def encode_shard_cursor(shard: int, after: int | None) -> str:
    """The cursor of an all-orders page continuing in ``shard`` after row id ``after`` (None: from its newest)."""
    text = f"{_SHARD_CURSOR_PREFIX}{shard}:{after or 0}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_shard_cursor(cursor: str, shards: int) -> tuple[int, int | None]:
    """(shard, after) of a cursor of :func:`encode_shard_cursor`; :class:`InvalidCursor` otherwise."""
    invalid = InvalidCursor("cursor is not one this API handed out")
    if not cursor or len(cursor) > 64:
        raise invalid
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid from None
    shard, _, after = text.removeprefix(_SHARD_CURSOR_PREFIX).partition(":")
    if not text.startswith(_SHARD_CURSOR_PREFIX) or not (shard.isdigit() and after.isdigit()):
        raise invalid
    if not 0 <= int(shard) < shards or len(after) > 19:
        raise invalid
    return int(shard), int(after) or None


class ShardedReader:
    """The read side over every shard (same questions as ``OrderReader``, routed by the reader's ``sub``)."""

    def __init__(self, shards: Shards):
        self._shards = shards
        self._readers: list[OrderReader] = [store.reader() for store in shards.stores]

    def _own(self, reader: Reader) -> int:
        return self._shards.index_for(reader.sub or None)

    def _search_order(self, reader: Reader) -> list[int]:
        """The reader's own shard, then (``read_all`` only) every other one."""
        own = self._own(reader)
        return [own] + ([k for k in range(self._shards.count) if k != own] if reader.read_all else [])

    def status(self, order_id: str, reader: Reader) -> dict[str, Any] | None:
        """As ``OrderReader.status``, from the reader's shard (``read_all``: the first shard that knows the order;
        ``queued`` only when every shard answered and none does)."""
        away: DatabaseUnavailable | None = None
        queued: dict[str, Any] | None = None
        for shard in self._search_order(reader):
            try:
                found = self._readers[shard].status(order_id, reader)
            except DatabaseUnavailable as exc:
                if not reader.read_all:
                    raise
                away = exc
                continue
            if found is None or found["status"] != "queued":
                return found
            queued = found
        if away is not None:
            raise away  # a shard that did not answer may hold it: "queued" could be wrong
        return queued

    def invoice_key(self, order_id: str, reader: Reader) -> tuple[bool, str | None]:
        """As ``OrderReader.invoice_key``, from the reader's shard (``read_all``: the shard that has the order)."""
        for shard in self._search_order(reader):
            visible, key = self._readers[shard].invoice_key(order_id, reader)
            if visible:
                return visible, key
        return False, None

    def page(self, reader: Reader, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """A page of ``limit`` orders after ``cursor`` (raises :class:`InvalidCursor` for a cursor not ours)."""
        if not reader.read_all or self._shards.count == 1:
            after = decode_cursor(cursor) if cursor is not None else None
            return self._readers[self._own(reader) if not reader.read_all else 0].page(reader, limit, after)
        shard, after = decode_shard_cursor(cursor, self._shards.count) if cursor is not None else (0, None)
        items: list[dict[str, Any]] = []
        while shard < self._shards.count and len(items) < limit:
            got, following = self._readers[shard].page(reader, limit - len(items), after)
            items += got
            if following is not None:
                return items, encode_shard_cursor(shard, decode_cursor(following))
            shard, after = shard + 1, None
        return items, (encode_shard_cursor(shard, None) if shard < self._shards.count else None)
