"""Order reads over the shards: a customer's reads go to their own shard only.

The gateway names the caller in ``X-Principal-Sub`` (set by itself after verifying the token; a caller's copy is
dropped) and has already checked that the order id was issued to that caller, so a customer's order is in the
shard of their own ``sub`` (``billing.shards.Shards.index_for``): status, invoice and list each ask that one
shard. A shard that is away raises ``DatabaseUnavailable`` (503 with Retry-After, ``common.web``).

A principal with ``billing.read`` (``read_all``) may read anyone's order, and the id does not say whose it is:
its own shard first, then the others. Its list of everyone's orders is merged newest first across the shards,
with a cursor that holds each shard's place (``s2:<id>,<id>,...``); customers' cursors are unchanged.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from billing.order_status import InvalidCursor, OrderReader, Reader, decode_cursor
from billing.shards import Shards
from common.db import DatabaseUnavailable

_SHARD_CURSOR_PREFIX = "s2:"
#: A shard's place in an all-orders cursor: continue after this row id; "" from its newest; "x" nothing left.
_EXHAUSTED = "x"
Position = int | None | str


def encode_shard_cursor(positions: list[Position]) -> str:
    """The cursor of an all-orders page: each shard's place (:data:`_EXHAUSTED`, a row id, or None: its newest)."""
    parts = ["" if place is None else str(place) for place in positions]
    text = f"{_SHARD_CURSOR_PREFIX}{','.join(parts)}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_shard_cursor(cursor: str, shards: int) -> list[Position]:
    """Each shard's place from a cursor of :func:`encode_shard_cursor`; :class:`InvalidCursor` otherwise (also
    when it was made for another number of shards)."""
    invalid = InvalidCursor("cursor is not one this API handed out")
    if not cursor or len(cursor) > 600:
        raise invalid
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid from None
    if not text.startswith(_SHARD_CURSOR_PREFIX):
        raise invalid
    parts = text.removeprefix(_SHARD_CURSOR_PREFIX).split(",")
    if len(parts) != shards:
        raise invalid
    positions: list[Position] = []
    for part in parts:
        if part in ("", _EXHAUSTED):
            positions.append(None if part == "" else _EXHAUSTED)
        elif part.isdigit() and len(part) <= 19 and int(part) > 0:
            positions.append(int(part))
        else:
            raise invalid
    return positions


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
        return self._merged_page(reader, limit, decode_shard_cursor(cursor, self._shards.count) if cursor else None)

    def _merged_page(
        self, reader: Reader, limit: int, positions: list[Position] | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Everyone's orders newest first across the shards: each shard's next ``limit`` + 1, merged by the time
        they were stored; each shard gives a prefix of its own order, so its place in the cursor (the last row
        id taken) skips and repeats nothing. A shard away fails the page (503): a list without it would look
        complete."""
        positions = positions or [None] * self._shards.count
        fetched = [
            [] if place == _EXHAUSTED else self._readers[shard].rows(reader, limit + 1, place)
            for shard, place in enumerate(positions)
        ]
        taken = [0] * len(fetched)
        items: list[dict[str, Any]] = []
        while len(items) < limit:
            heads = [shard for shard, rows in enumerate(fetched) if taken[shard] < len(rows)]
            if not heads:
                break
            shard = max(heads, key=lambda k: (fetched[k][taken[k]][1], -k))
            items.append(fetched[shard][taken[shard]][2])
            taken[shard] += 1
        following: list[Position] = []
        for shard, rows in enumerate(fetched):
            if positions[shard] == _EXHAUSTED or (taken[shard] == len(rows) and len(rows) <= limit):
                following.append(_EXHAUSTED)
            else:
                following.append(rows[taken[shard] - 1][0] if taken[shard] else positions[shard])
        more = any(place != _EXHAUSTED for place in following)
        return items, (encode_shard_cursor(following) if more else None)
