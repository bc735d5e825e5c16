"""Tuning knobs of the billing consumer, read from BILLING_* environment variables."""

from __future__ import annotations

from dataclasses import dataclass

from common.config import ConfigError, env_float, env_int


@dataclass(frozen=True)
class ConsumerSettings:
    """How the consumer batches, backs off and shuts down.

    Defaults suit a 0.25-1 vCPU task: 10,000 queued orders land in about a second on two cores.
    """

    #: Deliveries the broker may push before billing acknowledges (BILLING_PREFETCH). At least two batches,
    #: so the next batch is already on the wire while the current one is being written.
    prefetch: int = 1000
    #: Rows written by one INSERT (BILLING_BATCH_SIZE).
    batch_size: int = 500
    #: How long the first message of a batch may wait for company before the batch is written
    #: (BILLING_BATCH_WAIT_MS): the latency a lone order pays for throughput.
    batch_wait: float = 0.05
    #: First reconnect delay and its cap (BILLING_RECONNECT_INITIAL_MS, BILLING_RECONNECT_MAX_SECONDS).
    reconnect_initial: float = 0.5
    reconnect_max: float = 15.0
    #: How long shutdown waits for the in-flight batch (BILLING_SHUTDOWN_TIMEOUT_SECONDS); keep it below
    #: GUNICORN_GRACEFUL_TIMEOUT (25 s), after which gunicorn kills the worker.
    shutdown_timeout: float = 15.0

    def __post_init__(self) -> None:
        if self.batch_size > self.prefetch:
            # The broker would never deliver a full batch; every batch would wait for the timer.
            raise ConfigError(
                f"BILLING_BATCH_SIZE ({self.batch_size}) must not exceed BILLING_PREFETCH ({self.prefetch})"
            )

    @classmethod
    def from_env(cls) -> ConsumerSettings:
        """Read the BILLING_* variables; unset ones keep the defaults above."""
        defaults = cls()
        return cls(
            prefetch=env_int("BILLING_PREFETCH", defaults.prefetch, minimum=1),
            batch_size=env_int("BILLING_BATCH_SIZE", defaults.batch_size, minimum=1),
            batch_wait=env_int("BILLING_BATCH_WAIT_MS", int(defaults.batch_wait * 1000), minimum=0) / 1000,
            reconnect_initial=env_int("BILLING_RECONNECT_INITIAL_MS", int(defaults.reconnect_initial * 1000), minimum=1)
            / 1000,
            reconnect_max=env_float("BILLING_RECONNECT_MAX_SECONDS", defaults.reconnect_max),
            shutdown_timeout=env_float("BILLING_SHUTDOWN_TIMEOUT_SECONDS", defaults.shutdown_timeout),
        )
