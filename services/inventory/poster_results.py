"""The consumer of the poster pipeline's results (``contract.posters.RESULTS``): sets each movie's poster.

One thread per worker long-polls the SQS queue (competing consumers: SQS hands each message to one of them at
a time, and applying a result twice changes nothing). For each message:

- **poster.published / poster.rejected**: applied in one UPDATE (``MovieStore.apply_poster_result``), newest
  upload wins; an older or repeated result changes nothing. Deleted from the queue after the commit.
- **malformed** (not JSON, unknown type, bad ids or fields): logged once per receive and *not* deleted; after
  ``MAX_RECEIVE_COUNT`` receives SQS moves it to the dead-letter queue, where it waits for a human.
- **a movie that no longer exists**: deleted and logged (nothing to apply it to, ever).

SQS or the database away: the thread backs off (capped, jittered) and retries; it never ends the worker and
never affects the movies API, and ``/ready`` does not depend on it (the ``posters_results_*`` metrics show it).
While the database is away nothing is received, so valid results do not use up their receives.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
from dataclasses import dataclass
from typing import Any

from contract import environment as env
from contract import posters
from contract.limits import MAX_MOVIE_ID
from inventory import aws
from inventory import metrics as m
from inventory.db import MovieStore

log = logging.getLogger(__name__)

#: Seconds one receive waits for messages (SQS long polling: the contract's default; SQS allows 1 to 20).
WAIT_SECONDS = int(env.POSTER_RESULTS_WAIT_SECONDS.default)
#: Longest wait between two attempts while SQS or the database is away.
MAX_BACKOFF_SECONDS = 30.0
_UPLOAD_ID = re.compile(r"^[0-9]{13}[0-9a-f]{16}$")
_REASON_MAX_LENGTH = 1000
_URL_MAX_LENGTH = 500
_TYPES = {posters.POSTER_PUBLISHED: posters.PUBLISHED, posters.POSTER_REJECTED: posters.REJECTED}


class MalformedResult(ValueError):
    """A message that can never be applied; ``str(error)`` says why (it is logged, never the whole body)."""


@dataclass(frozen=True)
class PosterResult:
    """One decoded result message."""

    type: str
    movie_id: int
    upload_id: str
    poster: dict[str, str] | None = None
    reason: str | None = None

    @property
    def state(self) -> str:
        """The movie's ``poster_status.state`` after this result."""
        return _TYPES[self.type]


def _poster_urls(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or set(value) != set(posters.SIZES):
        raise MalformedResult(f"poster must map exactly {', '.join(posters.SIZES)} to URLs")
    for name, url in value.items():
        if (
            not isinstance(url, str)
            or not url.startswith(f"/{posters.PUBLISHED_PREFIX}")
            or len(url) > _URL_MAX_LENGTH
            or ".." in url
            or any(c.isspace() or c in "\"'<>\\\x00" for c in url)
        ):
            raise MalformedResult(f"poster.{name} must be a path under /{posters.PUBLISHED_PREFIX}")
    return value


def parse_result(body: str) -> PosterResult:
    """Decode and check one message body; MalformedResult when it is not a result inventory can apply."""
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        raise MalformedResult("body is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedResult("body is not a JSON object")
    kind = data.get("type")
    if kind not in _TYPES:
        raise MalformedResult(f"type must be one of {', '.join(_TYPES)}")
    movie_id = data.get("movie_id")
    if isinstance(movie_id, bool) or not isinstance(movie_id, int) or not 1 <= movie_id <= MAX_MOVIE_ID:
        raise MalformedResult("movie_id must be a positive integer")
    upload_id = data.get("upload_id")
    if not isinstance(upload_id, str) or not _UPLOAD_ID.match(upload_id):
        raise MalformedResult("upload_id must be 13 digits and 16 hex digits")
    if kind == posters.POSTER_PUBLISHED:
        return PosterResult(kind, movie_id, upload_id, poster=_poster_urls(data.get("poster")))
    reason = data.get("reason")
    if not isinstance(reason, str) or not reason.strip() or "\x00" in reason:
        raise MalformedResult("reason must be a non-empty text")
    return PosterResult(kind, movie_id, upload_id, reason=reason[:_REASON_MAX_LENGTH])


def _backoff(attempt: int) -> float:
    """Exponential from 0.5 s, capped, half fixed and half random (workers that lost SQS do not retry in step)."""
    ceiling = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** min(attempt - 1, 16))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not cryptography


class PosterResultsConsumer:
    """Consumes the results queue on a thread started by :meth:`start` (gunicorn's ``post_worker_init``)."""

    def __init__(self, store: MovieStore, queue_url: str, wait_seconds: int = WAIT_SECONDS):
        if not 1 <= wait_seconds <= 20:
            name = env.POSTER_RESULTS_WAIT_SECONDS.name
            raise ValueError(f"{name} must be 1 to 20 (SQS long polling), got {wait_seconds}")
        self._store = store
        self._queue_url = queue_url
        self._wait_seconds = wait_seconds
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._database_failed = False

    def start(self) -> None:
        """Start the consumer thread (once). boto3 is imported on that thread, not in the request path."""
        if self._thread is not None:
            return
        # Daemon: a receive blocked in a long poll must not hold the worker's exit; stop() waits briefly.
        self._thread = threading.Thread(target=self._run, name="poster-results", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> bool:
        """Stop after the current receive; True when the thread ended within ``timeout``. Messages of a receive
        cut short become visible again after the queue's visibility timeout (applying them is idempotent)."""
        self._stopping.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - SQS, the database or a bug: logged, backed off, retried
                m.CONSUMER_UP.set(0)
                m.RECEIVE_ERRORS.inc()
                attempt += 1
                delay = _backoff(attempt)
                log.warning(
                    "poster results consumer cannot run; retrying",
                    extra={"attempt": attempt, "retry_in_seconds": round(delay, 2),
                           "reason": f"{type(exc).__name__}: {str(exc).strip()[:300]}"},
                )
                self._stopping.wait(delay)
            else:
                attempt = 0
        m.CONSUMER_UP.set(0)
        log.info("poster results consumer stopped")

    def poll_once(self) -> int:
        """One long-poll receive and the handling of what it brought; returns how many messages came."""
        if self._database_failed:
            self._store.check()  # raises while the database is away: then nothing is received
            self._database_failed = False
        sqs = aws.client("sqs")
        response = sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=self._wait_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        m.CONSUMER_UP.set(1)
        messages = response.get("Messages", [])
        for message in messages:
            self._handle(sqs, message)
        return len(messages)

    def _handle(self, sqs: Any, message: dict[str, Any]) -> None:
        details = {
            "sqs_message_id": message.get("MessageId"),
            "receive_count": message.get("Attributes", {}).get("ApproximateReceiveCount"),
        }
        try:
            result = parse_result(message.get("Body", ""))
        except MalformedResult as exc:
            m.RESULTS_FAILED.labels("malformed").inc()
            log.warning("malformed poster result left for the dead-letter queue", extra={**details, "reason": str(exc)})
            return
        details.update(movie_id=result.movie_id, upload_id=result.upload_id, type=result.type)
        try:
            outcome = self._store.apply_poster_result(
                result.movie_id, result.upload_id, result.state, result.poster, result.reason
            )
        except Exception:
            # Not deleted: it comes back after the visibility timeout. Receive nothing until the database answers.
            self._database_failed = True
            m.RESULTS_FAILED.labels("database").inc()
            raise
        if outcome == "applied":
            m.RESULTS_APPLIED.labels(result.type).inc()
            log.info("poster result applied", extra=details)
        elif outcome == "unknown_movie":
            m.RESULTS_IGNORED.labels("unknown_movie").inc()
            log.warning("poster result for a movie that does not exist; deleted", extra=details)
        else:
            m.RESULTS_IGNORED.labels("stale_or_repeated").inc()
            log.info("poster result older than the movie's newest upload, or repeated; changes nothing", extra=details)
        sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
