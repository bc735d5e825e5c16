"""The local stand-in for Lambda's SQS event source mappings: ``python -m local_system.poster_runner``.

Started by the ``posters`` part (local_system/poster_pipeline.py) with the virtualenv's Python, because it
runs the filters themselves (boto3, Pillow); the rest of local_system stays standard-library only and never
imports this module. One process, one thread per filter: each long-polls its input queue in the emulator,
hands what it receives to the filter's ``handler`` as a Lambda SQS event (``Records`` with ``messageId``,
``receiptHandle``, ``body``, ``attributes.ApproximateReceiveCount``), then deletes the records the answer does
not list in ``batchItemFailures``. The failed ones stay in the queue: visible again after the visibility
timeout, moved to the dead-letter queue by the emulator's redrive policy after ``MAX_RECEIVE_COUNT`` receives,
as on AWS. ``GET /health`` on 127.0.0.1:<port> answers 200 with each filter's counters.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import threading
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from contract import posters as C
from functions.posters import common
from local_system.emulator_api import REGION
from local_system.poster_resources import ACCOUNT, filter_settings, queue_url
from local_system.profiles import get_profile
from local_system.runner_health import health_server

#: Long-poll wait: short, so `make down` (SIGTERM) stops a filter within this many seconds.
POLL_SECONDS = 1
#: Lambda's default batch size for SQS.
BATCH_SIZE = 10


class FilterLoop(threading.Thread):
    """Polls one pipe and runs one filter's handler on what arrives."""

    def __init__(self, name: str, queue: str, handler: Callable[[dict, Any], dict], settings: dict[str, str],
                 stopping: threading.Event):
        super().__init__(name=f"filter-{name}", daemon=True)
        self.filter, self.queue, self.handler, self.settings = name, queue, handler, settings
        self.stopping = stopping
        self.counts = {"batches": 0, "records": 0, "failed": 0, "poll_errors": 0}
        self.last_error: str | None = None

    def run(self) -> None:
        common.use_environment(self.settings)  # this thread's filter settings (three filters share the process)
        while not self.stopping.is_set():
            try:
                self.poll_once()
            except (BotoCoreError, ClientError) as exc:  # emulator restarting, queue not provisioned yet
                self.counts["poll_errors"] += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                common.log("WARNING", "cannot poll the queue", filter=self.filter, error=self.last_error)
                self.stopping.wait(1)

    def poll_once(self) -> None:
        """One receive, one handler call, one delete of the records that succeeded."""
        answer = common.sqs().receive_message(
            QueueUrl=self.queue, MaxNumberOfMessages=BATCH_SIZE, WaitTimeSeconds=POLL_SECONDS,
            MessageSystemAttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            return
        event = lambda_event(messages, self.queue)
        try:
            result = self.handler(event, None)
            failed = {item["itemIdentifier"] for item in result["batchItemFailures"]}
        except Exception as exc:  # noqa: BLE001 - as on Lambda: a function error fails the whole batch
            common.log("ERROR", "handler raised", filter=self.filter, error=f"{type(exc).__name__}: {exc}")
            failed = {message["MessageId"] for message in messages}
        done = [message for message in messages if message["MessageId"] not in failed]
        if done:
            common.sqs().delete_message_batch(QueueUrl=self.queue, Entries=[
                {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]} for index, message in enumerate(done)
            ])
        self.counts["batches"] += 1
        self.counts["records"] += len(messages)
        self.counts["failed"] += len(failed)


def lambda_event(messages: list[dict], queue: str) -> dict:
    """Received SQS messages as the event Lambda's SQS event source mapping delivers."""
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue.rsplit('/', 1)[-1]}"
    return {"Records": [
        {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {},
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
            "awsRegion": REGION,
        }
        for message in messages
    ]}


def _report(loops: list[FilterLoop]):
    def report() -> tuple[bool, dict[str, Any]]:
        filters = {loop.filter: {**loop.counts, "last_error": loop.last_error} for loop in loops}
        return all(loop.is_alive() for loop in loops), {"filters": filters}

    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_system.poster_runner", description=__doc__)
    parser.add_argument("--profile", choices=("dev", "test"), required=True)
    parser.add_argument("--port", type=int, required=True, help="the /health endpoint's port")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    stopping = threading.Event()
    settings = filter_settings(profile)
    loops = [
        FilterLoop(name, queue_url(profile, pipe.name), importlib.import_module(f"functions.posters.{name}").handler,
                   settings[name], stopping)
        for name, pipe in C.FILTERS.items()
    ]
    server = health_server(args.port, _report(loops))
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    for loop in loops:
        loop.start()
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    common.log("INFO", "poster pipeline running", filters=list(C.FILTERS), health=f"http://127.0.0.1:{args.port}/health")
    while not stopping.wait(1):
        pass
    server.shutdown()
    for loop in loops:
        loop.join(POLL_SECONDS + 30)  # a batch in progress finishes (its records are then deleted, not redone)
    common.log("INFO", "poster pipeline stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
