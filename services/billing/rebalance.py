"""Move users' billing rows to the shard the map names after the shard count changes:
``python -m billing.rebalance --from 2 --to 3``.

Reads the same variables as billing (``DATABASE_*`` for shard 0, ``BILLING_SHARD_<k>_DATABASE_*`` for shard k;
give it the environment of the NEW count), migrates every shard it touches, then, for every bucket
``contract.shards.moves(old, new)`` lists, moves the rows of that bucket's users from their old shard to the
new one: ``orders`` and ``rejected_orders`` (everything billing keeps per user). Per batch of users: copy into
the target in one transaction (``ON CONFLICT (message_id) DO NOTHING``; rows without a message id are matched
on every column), commit, then delete exactly the copied rows from the source. A crash between the two
commits leaves rows in both shards; running the command again skips the copies and finishes the delete:
it is idempotent and resumable, and a second run moves nothing.

Not moved, on purpose: ``order_minutes`` (per-shard aggregates of minutes already closed), the outbox (rows
waiting there are published by the source shard's relay) and the inbox (a replay of an old event is absorbed
by the saga handlers' own state checks). The procedure (pause the consumers first) is in
docs/patterns/sharding.md.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from psycopg2.extras import execute_values

from billing.shards import Shards, shard_key
from common.config import DatabaseSettings
from common.db import transaction
from contract.services import BILLING
from contract.shards import MAX_SHARDS, bucket_of, moves

#: Users whose rows move in one copy-and-delete round.
USERS_PER_BATCH = 200
#: Rows read from the source at a time.
ROWS_PER_READ = 1000

_ORDER_COLUMNS = (
    "user_id", "number_of_items", "total_amount", "message_id", "request_id", "created_at", "owner_sub",
    "owner_name", "priority", "movie_id", "quantity", "unit_price", "purchase_status", "purchase_reason",
    "invoice_key", "invoice_sha256", "updated_at",
)
_REJECTION_COLUMNS = ("message_id", "owner_sub", "owner_name", "kind", "reason", "rejected_at")


@dataclass(frozen=True)
class Table:
    """A per-user table: its columns (all but the identity ``id``) and how a copy is recognised."""

    name: str
    columns: tuple[str, ...]

    def select(self) -> str:
        """The rows of a batch of owners after a row id, oldest first (``%(anonymous)s``: NULL owners too)."""
        return (
            f"SELECT id, {', '.join(self.columns)} FROM {self.name}"  # noqa: S608 - constant names
            " WHERE (owner_sub = ANY(%(owners)s) OR (%(anonymous)s AND owner_sub IS NULL)) AND id > %(after)s"
            " ORDER BY id LIMIT %(limit)s"
        )

    def insert(self) -> str:
        """Insert copies; a row whose message id the target already holds is skipped."""
        return (
            f"INSERT INTO {self.name} ({', '.join(self.columns)}) VALUES %s"  # noqa: S608 - constant names
            " ON CONFLICT (message_id) DO NOTHING"
        )

    def find_copy(self) -> str:
        """Whether a row equal to the given one (every column) is already there (rows without a message id)."""
        same = " AND ".join(f"{column} IS NOT DISTINCT FROM %s" for column in self.columns)
        return f"SELECT 1 FROM {self.name} WHERE {same} LIMIT 1"  # noqa: S608 - constant names

    def insert_one(self) -> str:
        """Insert one row."""
        placeholders = ", ".join(["%s"] * len(self.columns))
        return f"INSERT INTO {self.name} ({', '.join(self.columns)}) VALUES ({placeholders})"  # noqa: S608


TABLES = (Table("orders", _ORDER_COLUMNS), Table("rejected_orders", _REJECTION_COLUMNS))


@dataclass
class Moved:
    """What one (source, target) pair moved."""

    users: int = 0
    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def owners_to_move(shards: Shards, old: int, new: int) -> dict[tuple[int, int], list[str | None]]:
    """``{(from, to): [owner sub, ...]}``: the owners (None: orders without a principal) of every moving bucket
    found in its old shard."""
    moving = moves(old, new)
    found: dict[tuple[int, int], list[str | None]] = defaultdict(list)
    sources = sorted({source for source, _ in moving.values()})
    for source in sources:
        with shards.stores[source].pool.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT DISTINCT owner_sub FROM orders UNION SELECT DISTINCT owner_sub FROM rejected_orders")
            owners = [row[0] for row in cur.fetchall()]
        for owner in owners:
            bucket = bucket_of(shard_key(owner))
            if bucket in moving and moving[bucket][0] == source:
                found[moving[bucket]].append(owner)
    return found


def _batches(owners: Sequence[str | None]) -> Iterator[list[str | None]]:
    for start in range(0, len(owners), USERS_PER_BATCH):
        yield list(owners[start : start + USERS_PER_BATCH])


def move_owners(shards: Shards, source: int, target: int, owners: Sequence[str | None]) -> Moved:
    """Copy, then delete, every per-user row of ``owners`` from ``source`` to ``target``."""
    moved = Moved(users=len(owners))
    for batch in _batches(owners):
        params = {"owners": [owner for owner in batch if owner is not None], "anonymous": None in batch}
        for table in TABLES:
            moved.rows[table.name] += _move_table(shards, source, target, table, params)
    return moved


def _move_table(shards: Shards, source: int, target: int, table: Table, params: dict) -> int:
    total, after = 0, 0
    while True:
        with shards.stores[source].pool.connection() as conn, conn.cursor() as cur:
            cur.execute(table.select(), {**params, "after": after, "limit": ROWS_PER_READ})
            rows = cur.fetchall()
        if not rows:
            return total
        with shards.stores[target].pool.connection() as conn, transaction(conn) as cur:
            keyed = [row[1:] for row in rows if row[1 + table.columns.index("message_id")] is not None]
            if keyed:
                execute_values(cur, table.insert(), keyed, page_size=len(keyed))
            for row in rows:
                if row[1 + table.columns.index("message_id")] is None:
                    cur.execute(table.find_copy(), row[1:])
                    if cur.fetchone() is None:  # not copied by an earlier, interrupted run
                        cur.execute(table.insert_one(), row[1:])
        # The copies are committed: only now do the originals go (exactly these rows, not newer ones).
        with shards.stores[source].pool.connection() as conn, transaction(conn) as cur:
            cur.execute(f"DELETE FROM {table.name} WHERE id = ANY(%s)", ([row[0] for row in rows],))  # noqa: S608
        total += len(rows)
        after = rows[-1][0]


def rebalance(shards: Shards, old: int, new: int) -> dict[tuple[int, int], Moved]:
    """Move the rows of every bucket that changes shard from ``old`` to ``new`` shards; what moved, per pair."""
    for store in shards.stores:
        store.check()  # every shard migrated (a new shard's tables exist before rows arrive)
    found = owners_to_move(shards, old, new)
    return {pair: move_owners(shards, *pair, found[pair]) for pair in sorted(found)}


def _count(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_SHARDS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_SHARDS}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m billing.rebalance", description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="old", type=_count, required=True, help="the shard count the rows follow now")
    parser.add_argument("--to", dest="new", type=_count, required=True, help="the shard count to move them to")
    args = parser.parse_args(argv)
    buckets = moves(args.old, args.new)
    print(f"{len(buckets)} of 256 buckets change shard from {args.old} to {args.new} shards")
    shards = Shards.from_settings(
        DatabaseSettings.from_env(default_name=BILLING.database), max(args.old, args.new), "billing-rebalance"
    )
    try:
        result = rebalance(shards, args.old, args.new)
    finally:
        shards.close()
    for (source, target), moved in result.items():
        rows = ", ".join(f"{count} {name}" for name, count in moved.rows.items())
        print(f"shard {source} -> shard {target}: {moved.users} user(s), {rows}")
    if not any(sum(moved.rows.values()) for moved in result.values()):
        print("nothing to move")
    return 0


if __name__ == "__main__":
    sys.exit(main())
