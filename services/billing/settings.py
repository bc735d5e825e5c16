"""Tuning knobs of the billing consumer, read from BILLING_* environment variables, and the reconnect backoff."""

from __future__ import annotations

from dataclasses import dataclass

from billing.lanes import priorities_for
from common.backoff import backoff_delay  # noqa: F401 - re-exported: the consumer and jobs use it from here
from common.config import ConfigError, env_float, env_int, env_str
from contract import environment as env


@dataclass(frozen=True)
class ConsumerSettings:
    """How the consumer batches, backs off and shuts down.

    Defaults (the contract's, ``contract.environment``) suit a 0.25-1 vCPU task: 10,000 queued orders land in
    about a second on two cores.
    """

    #: Deliveries the broker may push before billing acknowledges (BILLING_PREFETCH). At least two batches,
    #: so the next batch is already on the wire while the current one is being written.
    prefetch: int = int(env.BILLING_PREFETCH.default or 0)
    #: Rows written by one INSERT (BILLING_BATCH_SIZE).
    batch_size: int = int(env.BILLING_BATCH_SIZE.default or 0)
    #: How long the first message of a batch may wait for company before the batch is written
    #: (BILLING_BATCH_WAIT_MS): the latency a lone order pays for throughput.
    batch_wait: float = int(env.BILLING_BATCH_WAIT_MS.default or 0) / 1000
    #: First reconnect delay and its cap (BILLING_RECONNECT_INITIAL_MS, BILLING_RECONNECT_MAX_SECONDS).
    reconnect_initial: float = int(env.BILLING_RECONNECT_INITIAL_MS.default or 0) / 1000
    reconnect_max: float = float(env.BILLING_RECONNECT_MAX_SECONDS.default or 0)
    #: How long shutdown waits for the in-flight batch (BILLING_SHUTDOWN_TIMEOUT_SECONDS); keep it below
    #: GUNICORN_GRACEFUL_TIMEOUT (25 s), after which gunicorn kills the worker.
    shutdown_timeout: float = float(env.BILLING_SHUTDOWN_TIMEOUT_SECONDS.default or 0)
    #: Which queues to consume (BILLING_CONSUME): ``all`` (express ahead of standard) or ``express`` only.
    consume: str = env.BILLING_CONSUME.default or "all"
    #: Long-run cap on inserted rows per second (BILLING_MAX_ROWS_PER_SECOND); 0: none (billing.pacing).
    max_rows_per_second: float = float(env.BILLING_MAX_ROWS_PER_SECOND.default or 0)

    def __post_init__(self) -> None:
        priorities_for(self.consume)  # ConfigError for an unknown value
        if self.batch_size > self.prefetch:
            # The broker would never deliver a full batch; every batch would wait for the timer.
            raise ConfigError(
                f"BILLING_BATCH_SIZE ({self.batch_size}) must not exceed BILLING_PREFETCH ({self.prefetch})"
            )

    @classmethod
    def from_env(cls) -> ConsumerSettings:
        """Read the BILLING_* variables; unset ones keep the defaults above."""
        return cls(
            prefetch=env_int(env.BILLING_PREFETCH, minimum=1),
            batch_size=env_int(env.BILLING_BATCH_SIZE, minimum=1),
            batch_wait=env_int(env.BILLING_BATCH_WAIT_MS, minimum=0) / 1000,
            reconnect_initial=env_int(env.BILLING_RECONNECT_INITIAL_MS, minimum=1) / 1000,
            reconnect_max=env_float(env.BILLING_RECONNECT_MAX_SECONDS),
            shutdown_timeout=env_float(env.BILLING_SHUTDOWN_TIMEOUT_SECONDS),
            consume=env_str(env.BILLING_CONSUME).strip().lower(),
            max_rows_per_second=env_float(env.BILLING_MAX_ROWS_PER_SECOND, allow_zero=True),
        )

    @property
    def priorities(self) -> tuple[str, ...]:
        """The priorities consumed, most urgent first (each is one queue: ``contract.messaging.PRIORITY_QUEUES``)."""
        return priorities_for(self.consume)



@dataclass(frozen=True)
class JobSettings:
    """How billing elects its leader and how often the leader runs the periodic jobs (``billing.jobs``)."""

    #: A follower tries the leader lock, and the leader checks it still holds it, this often
    #: (BILLING_LEADER_CHECK_SECONDS); see ``billing.leader`` for how it fits the 15 s failover budget.
    leader_check: float = float(env.BILLING_LEADER_CHECK_SECONDS.default or 0)
    #: Seconds between two runs of the jobs on the leader (BILLING_JOBS_INTERVAL_SECONDS).
    interval: float = float(env.BILLING_JOBS_INTERVAL_SECONDS.default or 0)
    #: Re-drives of one transient dead letter before it stays for a human (BILLING_REDRIVE_MAX_ATTEMPTS).
    redrive_max_attempts: int = int(env.BILLING_REDRIVE_MAX_ATTEMPTS.default or 0)
    #: A purchase still pending after this many seconds is rejected and its stock released
    #: (PURCHASE_TIMEOUT_SECONDS; ``billing.saga.reject_timed_out``).
    purchase_timeout: float = float(env.PURCHASE_TIMEOUT_SECONDS.default or 0)

    @classmethod
    def from_env(cls) -> JobSettings:
        """Read the variables; unset ones keep the defaults above."""
        return cls(
            leader_check=env_float(env.BILLING_LEADER_CHECK_SECONDS),
            interval=env_float(env.BILLING_JOBS_INTERVAL_SECONDS),
            redrive_max_attempts=env_int(env.BILLING_REDRIVE_MAX_ATTEMPTS, minimum=0),
            purchase_timeout=env_float(env.PURCHASE_TIMEOUT_SECONDS),
        )
