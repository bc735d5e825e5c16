"""The poster tests' S3 and SQS: boto3 clients of the test emulator (moto server) and its buckets and queues.

The local system provisions the uploads bucket and the pipeline's queues at every emulator start
(``local_system.poster_resources.provision``); tests that need a queue no other consumer reads make their own.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3

from contract import posters
from local_system.emulator_api import DUMMY_KEY, REGION


def client(service: str, endpoint: str) -> Any:
    """A boto3 client of the emulator with its dummy keys (never a developer's real credentials)."""
    return boto3.client(
        service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_KEY
    )


def own_queue(sqs: Any, visibility_timeout: int = 1) -> tuple[str, str]:
    """A results queue of one test alone (no other consumer competes for it), with a short visibility timeout
    and a dead-letter queue after MAX_RECEIVE_COUNT receives, as the local system's; (URL, DLQ URL)."""
    name = f"poster-results-test-{uuid.uuid4().hex[:12]}"
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": posters.MAX_RECEIVE_COUNT}),
        },
    )["QueueUrl"]
    return url, dlq_url


def messages_in(sqs: Any, url: str) -> int:
    """Visible plus in-flight messages of a queue."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def published(movie_id: int, upload_id: str) -> dict[str, Any]:
    """A poster.published message as the publish filter sends it."""
    return {
        "type": posters.POSTER_PUBLISHED,
        "movie_id": movie_id,
        "upload_id": upload_id,
        "poster": {
            name: f"/{posters.PUBLISHED_PREFIX}{movie_id}/{upload_id}/{name}.{posters.PUBLISHED_EXTENSION}"
            for name in posters.SIZES
        },
    }


def rejected(movie_id: int, upload_id: str, reason: str = "not an image: the bytes are no PNG") -> dict[str, Any]:
    """A poster.rejected message as the validate filter sends it."""
    return {"type": posters.POSTER_REJECTED, "movie_id": movie_id, "upload_id": upload_id, "reason": reason}
