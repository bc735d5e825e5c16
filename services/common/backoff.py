"""The reconnect backoff of every background loop (billing's consumer, the outbox relay, the saga consumer)."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, initial: float, maximum: float) -> float:
    """Delay before reconnect attempt ``attempt`` (1, 2, ...): exponential, capped, with "equal jitter".

    Half of the delay is fixed and half random, so many tasks that lost the same broker do not come back in
    lockstep, yet none retries immediately.
    """
    ceiling = min(maximum, initial * 2 ** min(attempt - 1, 32))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not cryptography
