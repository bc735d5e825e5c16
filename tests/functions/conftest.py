"""Fixtures for the poster filters' tests: a moto server of their own (S3 and SQS), emptied before each test.

The filters run in this process against it exactly as on Lambda against AWS: boto3 clients configured by
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL_SQS``, settings from the environment. Uploads are real
``PutObject`` calls; the S3 notification moto sends to the UPLOADED queue is received and handed to the
handler as a Lambda SQS event, so the tests see the event shape S3 really produces.

Its own server on a free port (not the local system's emulator, whose queues the local runner consumes).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import pytest

from contract import posters as C
from functions.posters import common
from tests.moto_process import free_port, moto_server

REGION = "eu-west-1"
ACCOUNT = "123456789012"
UPLOADS, WEB = "filters-uploads", "filters-web"


@pytest.fixture(scope="session")
def filter_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto_server of this session on a free port; its URL."""
    log = tmp_path_factory.mktemp("filters-moto") / "moto.log"
    with moto_server(free_port(), log, {"AWS_DEFAULT_REGION": REGION}) as url:
        yield url


@dataclass
class Pipeline:
    """The buckets and queues of one test, with clients to look at them."""

    s3: object
    sqs: object
    queues: dict[str, str]

    def queue(self, pipe: C.Pipe) -> str:
        return self.queues[pipe.name]

    def upload(self, data: bytes, content_type: str = "image/png", movie_id: int = 7,
               upload_id: str = "1767225600000abcdef0123456789") -> str:
        """Put an upload at its incoming/ key (S3 notifies UPLOADED); its key."""
        key = C.incoming_key(movie_id, upload_id)
        self.s3.put_object(Bucket=UPLOADS, Key=key, Body=data, ContentType=content_type)
        return key

    def receive(self, pipe: C.Pipe, wait: float = 2) -> list[dict]:
        """Every message now on ``pipe`` (received, so invisible for a while; the S3 test event skipped)."""
        messages, deadline = [], time.monotonic() + wait
        while True:
            answer = self.sqs.receive_message(
                QueueUrl=self.queue(pipe), MaxNumberOfMessages=10, WaitTimeSeconds=0,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
            got = [m for m in answer.get("Messages", []) if "s3:TestEvent" not in m["Body"]]
            messages += got
            if (messages and not got) or time.monotonic() > deadline:
                return messages
            if not got:
                time.sleep(0.05)

    def bodies(self, pipe: C.Pipe) -> list[dict]:
        """The JSON bodies of every message now on ``pipe``."""
        return [json.loads(message["Body"]) for message in self.receive(pipe, wait=0.5)]

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        return [item["Key"] for item in self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]

    def read(self, bucket: str, key: str) -> bytes:
        return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def lambda_event(messages: list[dict], pipe: C.Pipe = C.UPLOADED) -> dict:
    """The event Lambda's SQS event source mapping hands a function for received ``messages``."""
    return {"Records": [
        {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": {"ApproximateReceiveCount": message.get("Attributes", {}).get("ApproximateReceiveCount")},
            "messageAttributes": {},
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{pipe.name}",
            "awsRegion": REGION,
        }
        for message in messages
    ]}


def body_event(body: dict | str, message_id: str = "m-1") -> dict:
    """A Lambda SQS event of one hand-made message (for the filters after validate)."""
    text = body if isinstance(body, str) else json.dumps(body)
    return {"Records": [{"messageId": message_id, "receiptHandle": "r", "body": text,
                         "attributes": {"ApproximateReceiveCount": "1"}}]}


@pytest.fixture
def pipeline(filter_emulator: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    """An empty emulator with the uploads and web buckets, the four pipes, UPLOADED notified by S3 of
    incoming/, and every filter setting in the environment (NEXT_QUEUE_URL: the test sets it per filter)."""
    reset = urllib.request.Request(f"{filter_emulator}/moto-api/reset", method="POST")  # noqa: S310 - local http
    urllib.request.urlopen(reset, timeout=10).close()  # noqa: S310 - local http
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", filter_emulator)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", filter_emulator)
    common.s3.cache_clear()
    common.sqs.cache_clear()
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    for bucket in (UPLOADS, WEB):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    queues = {pipe.name: sqs.create_queue(QueueName=pipe.name)["QueueUrl"] for pipe in C.PIPES}
    s3.put_bucket_notification_configuration(Bucket=UPLOADS, NotificationConfiguration={"QueueConfigurations": [{
        "QueueArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{C.UPLOADED.name}",
        "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": C.INCOMING_PREFIX}]}},
    }]})
    monkeypatch.setenv(common.UPLOAD_BUCKET, UPLOADS)
    monkeypatch.setenv(common.WEB_BUCKET, WEB)
    monkeypatch.setenv(common.RESULTS_QUEUE_URL, queues[C.RESULTS.name])
    yield Pipeline(s3, sqs, queues)
    common.s3.cache_clear()  # never reused by a test with other endpoints
    common.sqs.cache_clear()
