"""What the three filters share: settings, AWS clients, JSON log lines, messages and the batch loop.

Settings come from the environment (``UPLOAD_BUCKET``, ``WEB_BUCKET``, ``NEXT_QUEUE_URL``,
``RESULTS_QUEUE_URL``); boto3 reads its own (``AWS_REGION``, and locally ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL_SQS`` pointing at the emulator). The local runner runs all three filters in one process,
so it gives each filter thread its own copy of those four with :func:`use_environment`; on Lambda nobody
calls it and the process environment is the filter's.
"""

from __future__ import annotations

import contextvars
import functools
import json
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from botocore.config import Config

from contract import posters as C

UPLOAD_BUCKET = "UPLOAD_BUCKET"
WEB_BUCKET = "WEB_BUCKET"
NEXT_QUEUE_URL = "NEXT_QUEUE_URL"
RESULTS_QUEUE_URL = "RESULTS_QUEUE_URL"

#: An upload id as inventory makes them (epoch ms + hex); anything else is not ours and never becomes a key.
_UPLOAD_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
#: Short timeouts and few retries: a filter that cannot reach S3 or SQS fails its records quickly, and SQS
#: retries them later (a retry inside the function would only burn its timeout).
_CLIENT_CONFIG = Config(connect_timeout=3, read_timeout=20, retries={"max_attempts": 3, "mode": "standard"})

_environment: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar("environment", default=None)


class Rejected(Exception):
    """The upload is not an acceptable poster; ``reason`` is shown to the person who uploaded it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Malformed(ValueError):
    """A message no retry can make sense of; its record fails until SQS moves it to the dead-letter queue."""


# -- settings and clients -----------------------------------------------------------------------------------
def use_environment(values: Mapping[str, str]) -> None:
    """Settings of the filter running in this thread (the local runner); the process environment otherwise."""
    _environment.set(dict(values))


def setting(name: str) -> str:
    """A required setting; a missing one fails the record (retried, then the DLQ: a deployment error)."""
    values = _environment.get()
    value = (values if values is not None else os.environ).get(name, "")
    if not value:
        raise RuntimeError(f"{name} is not set")
    return value


@functools.cache
def s3():
    """The S3 client of this container (built once: its connection pool outlives one invocation)."""
    return boto3.client("s3", config=_CLIENT_CONFIG)


@functools.cache
def sqs():
    """The SQS client of this container."""
    return boto3.client("sqs", config=_CLIENT_CONFIG)


# -- log lines ----------------------------------------------------------------------------------------------
def log(level: str, message: str, **fields: Any) -> None:
    """One JSON line on stdout (CloudWatch Logs on Lambda, the part's log file locally)."""
    line = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": level, "message": message}
    line.update(fields)
    print(json.dumps(line, default=str), file=sys.stdout, flush=True)


# -- messages -------------------------------------------------------------------------------------------------
def send(queue_url: str, body: Mapping[str, Any]) -> None:
    """Send one JSON message. Keys sorted: a repeated send of the same result is byte for byte the same."""
    sqs().send_message(QueueUrl=queue_url, MessageBody=json.dumps(body, sort_keys=True))


def reject(movie_id: int, upload_id: str, reason: str) -> None:
    """Report ``poster.rejected`` with ``reason`` on RESULTS."""
    send(setting(RESULTS_QUEUE_URL), {
        "type": C.POSTER_REJECTED, "movie_id": movie_id, "upload_id": upload_id, "reason": reason,
    })
    log("INFO", "poster rejected", movie_id=movie_id, upload_id=upload_id, reason=reason)


def stage_message(body: str, *fields: str) -> dict[str, Any]:
    """A message between two filters: ``movie_id`` (int), ``upload_id``, ``bucket`` and ``fields``; else Malformed."""
    try:
        message = json.loads(body)
    except ValueError:
        raise Malformed("the message is not JSON") from None
    if not isinstance(message, dict):
        raise Malformed("the message is not a JSON object")
    movie_id, upload_id = message.get("movie_id"), message.get("upload_id")
    if not isinstance(movie_id, int) or isinstance(movie_id, bool) or movie_id < 1:
        raise Malformed(f"movie_id must be a positive integer, got {movie_id!r}")
    check_upload_id(upload_id)
    for name in ("bucket", *fields):
        if name not in message:
            raise Malformed(f"the message has no {name!r}")
    return message


def check_upload_id(upload_id: Any) -> str:
    """The upload id, if it is one (it becomes part of S3 keys and URLs); else Malformed."""
    if not isinstance(upload_id, str) or not _UPLOAD_ID.match(upload_id):
        raise Malformed(f"not an upload id: {upload_id!r}")
    return upload_id


# -- the batch loop -------------------------------------------------------------------------------------------
def handle_batch(name: str, event: Mapping[str, Any], process: Callable[[Mapping[str, Any]], None]) -> dict:
    """Run ``process`` on every SQS record; the answer lists the records that failed (Lambda partial batch
    response: those are delivered again, the others deleted).

    A record fails when ``process`` raises: S3 or SQS unavailable, a missing setting, a malformed message.
    A rejected image is not a failure: ``process`` reports it on RESULTS and returns.
    """
    failures = []
    for record in event.get("Records", []):
        message_id = record.get("messageId", "")
        try:
            process(record)
        except Exception as exc:  # noqa: BLE001 - any failure of one record must not lose the others
            attempts = record.get("attributes", {}).get("ApproximateReceiveCount")
            log("ERROR", "record failed", filter=name, message_id=message_id, receive_count=attempts,
                error=f"{type(exc).__name__}: {exc}")
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}
