"""The leader's periodic jobs: re-driving transient dead letters and the per-minute order aggregates.

A :class:`JobRunner` thread runs in every billing process, but runs the jobs only while its
:class:`~billing.leader.LeaderElection` says this process leads: once right after it is elected, then every
``interval`` seconds. It checks leadership again before each job (and the re-drive before each message), so a
leader that steps down stops within one step. Each job is idempotent on its own as well (see
``billing.leader`` for why two leaders cannot overlap in the first place).

Jobs:

- ``redrive``: for each queue billing consumes (``contract.messaging.PRIORITY_QUEUES``), dead letters the broker moved
  past the delivery limit (the consumer crashed or lost its connection on them: possibly transient) go back to
  their queue through :func:`billing.deadletters.replay_dead_letters`, keeping their message id (billing's
  insert is idempotent by it) and counting the attempt in ``x-redrive-attempts``. After
  ``BILLING_REDRIVE_MAX_ATTEMPTS`` attempts a dead letter stays for a human (``python -m billing.deadletters
  list`` shows ``redrive_attempts``) and is recorded as rejected, so ``GET /api/orders/<id>`` stops saying
  ``queued`` about an order nothing will store by itself (a later manual replay that stores it wins: status
  reads the stored row first). Dead letters billing judged itself (invalid data) are never re-driven.
- ``aggregates``: :func:`billing.aggregates.aggregate_minutes`, in each shard (its own orders, its own
  ``order_minutes``).
- ``purchase_timeouts``: purchases pending longer than ``PURCHASE_TIMEOUT_SECONDS`` become ``rejected`` and
  emit ``order.cancelled`` (inventory releases what it may have reserved), in one transaction
  (:func:`billing.saga.reject_timed_out`).
- ``redrive_saga`` (with several shards): saga events parked while their shard was away go back to
  ``billing.saga`` once it answers.

The re-drives live in ``billing.redrive`` (orders parked because their shard was away go back once it
answers, never counted as an attempt). Every job covers every shard (``each_shard``): a shard that is away is
skipped with a warning and does not block the others; the leader lock itself lives in shard 0.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from billing.aggregates import aggregate_minutes
from billing.leader import LeaderElection
from billing.metrics import JOB_RUNS
from billing.redrive import redrive_parked_saga_events, redrive_transient
from billing.saga import TIMEOUT_BATCH, reject_timed_out
from billing.shards import Shards
from billing.store import OrderStore
from common.config import RabbitSettings
from common.db import DatabaseUnavailable, transaction
from contract import environment as env

log = logging.getLogger(__name__)


def reject_timed_out_purchases(store: OrderStore, timeout_seconds: float) -> int:
    """Reject the purchases pending longer than ``timeout_seconds`` (and emit their ``order.cancelled``)."""
    store.check()  # the schema, before the first query of a fresh process
    total = 0
    while True:
        with store.pool.connection() as conn, transaction(conn) as cur:
            count = reject_timed_out(cur, timeout_seconds)
        total += count
        if count < TIMEOUT_BATCH:
            return total


def each_shard(shards: Shards, job: str, work: Callable[[OrderStore], object], keep_going: Callable[[], bool]) -> int:
    """Run ``work`` on every shard's store; a shard that is away is skipped with a warning (the others still
    run; the next run catches up). Raises only when every shard failed. Returns how many shards ran it."""
    ran, failures = 0, []
    for shard, store in enumerate(shards.stores):
        if not keep_going():
            break
        try:
            work(store)
        except DatabaseUnavailable as exc:
            failures.append(exc)
            log.warning("billing job skipped a shard that is away", extra={"job": job, "shard": shard,
                                                                           "reason": str(exc)})
        else:
            ran += 1
    if failures and not ran:
        raise failures[0]
    return ran


class JobRunner:
    """Runs the jobs on a daemon thread while ``election`` says this process leads."""

    def __init__(
        self,
        election: LeaderElection,
        store: OrderStore | Shards,
        rabbit: RabbitSettings,
        interval: float,
        redrive_max_attempts: int,
        poll: float = 1.0,
        purchase_timeout: float = float(env.PURCHASE_TIMEOUT_SECONDS.default or 0),
    ):
        self._election = election
        self._interval = interval
        self._poll = poll
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        keep_going = self._may_run
        shards = store if isinstance(store, Shards) else Shards([store])
        # One leader for the whole system (its lock lives in shard 0); each job covers every shard.
        self.jobs: dict[str, Callable[[], object]] = {
            "redrive": lambda: redrive_transient(rabbit, redrive_max_attempts, keep_going, shards),
            "aggregates": lambda: each_shard(shards, "aggregates", aggregate_minutes, keep_going),
            "purchase_timeouts": lambda: each_shard(
                shards, "purchase_timeouts", lambda one: reject_timed_out_purchases(one, purchase_timeout), keep_going
            ),
        }
        if shards.count > 1:
            self.jobs["redrive_saga"] = lambda: redrive_parked_saga_events(rabbit, shards, keep_going)

    def _may_run(self) -> bool:
        return self._election.is_leader and not self._stopping.is_set()

    def start(self) -> None:
        """Start the runner thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="billing-jobs", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the job step in progress (a short wait: the consumer's batch needs the graceful time)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        next_run = 0.0
        was_leader = False
        while not self._stopping.is_set():
            leading = self._election.is_leader
            if leading and (not was_leader or time.monotonic() >= next_run):
                self.run_jobs()
                next_run = time.monotonic() + self._interval
            was_leader = leading
            self._stopping.wait(self._poll)

    def run_jobs(self) -> None:
        """Run each job once, in order, while still leading; a failing job is logged and the next one runs."""
        for name, job in self.jobs.items():
            if not self._may_run():
                return
            try:
                job()
            except Exception as exc:  # noqa: BLE001 - a job failing (dependency away) must not end the thread
                JOB_RUNS.labels(name, "failed").inc()
                log.warning("billing job failed; retried next run", extra={"job": name, "reason": repr(exc)})
            else:
                JOB_RUNS.labels(name, "ok").inc()
