"""Waiting in tests for something that happens asynchronously (a message consumed, a row written, a process
up): poll, and fail the test with what was awaited when it does not come in time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Call ``condition`` every ``interval`` seconds until it returns something truthy, and return that; fail
    the test naming ``what`` if ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def poll(condition: Callable[[], T], timeout: float, interval: float = 0.2) -> T:
    """``condition()``'s first truthy value within ``timeout`` seconds, else its last value: for a caller that
    asserts with a message of its own (``assert poll(...), details``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
