"""The local poster pipeline end to end: a presigned POST to the test emulator's uploads bucket, the runner's
three filters, the published WebPs in the web bucket and the result on RESULTS (the ``posters`` part)."""

from __future__ import annotations

import io
import json
import time
import uuid

import boto3
import pytest
import requests
from PIL import Image

from contract import posters as C
from contract import web
from local_system.poster_resources import UPLOAD_BUCKET, WEB_BUCKET, emulator_url, queue_url
from local_system.poster_runner import POLL_SECONDS
from local_system.processes import http_status
from tests.functions.poster_samples import image_bytes

#: How long a result may take before the test calls it lost: the pipeline needs about a second, but a receive
#: that inventory's consumer had in flight when the fixture stopped inventory still takes a message on the
#: emulator (as on SQS: the server finishes the long poll), which is then invisible for the visibility timeout.
WAIT_SECONDS = C.VISIBILITY_TIMEOUT_SECONDS + 15


@pytest.fixture(scope="module")
def poster_pipeline(test_system):
    """The test emulator and a freshly started runner (the code under test). Inventory, which consumes
    RESULTS once posters are wired, is paused meanwhile so the test can read the results itself."""
    test_system.start_service("cognito")
    test_system.stop_service("posters")
    test_system.start_service("posters")
    inventory = test_system.service("inventory")
    was_running = inventory.pid() is not None
    if was_running:
        test_system.stop_service("inventory")
    yield test_system
    if was_running:
        test_system.start_service("inventory")


@pytest.fixture
def aws(poster_pipeline, monkeypatch):
    """boto3 clients for the test emulator (dummy keys; the caller's AWS settings ignored)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    url = emulator_url(poster_pipeline.profile)
    session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name="eu-west-1")
    clients = {"s3": session.client("s3", endpoint_url=url), "sqs": session.client("sqs", endpoint_url=url)}
    return clients


def presigned_upload(aws, data: bytes, content_type: str, movie_id: int) -> str:
    """Upload as the browser does: inventory's kind of presigned POST, the file as the last form field."""
    upload_id = f"{int(time.time() * 1000)}{uuid.uuid4().hex[:16]}"
    key = C.incoming_key(movie_id, upload_id)
    post = aws["s3"].generate_presigned_post(
        UPLOAD_BUCKET, key, Fields={"Content-Type": content_type},
        Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, C.MAX_UPLOAD_BYTES]],
        ExpiresIn=C.UPLOAD_EXPIRES_SECONDS,
    )
    answer = requests.post(post["url"], data=post["fields"], files={C.FILE_FIELD: ("poster", data, content_type)},
                           timeout=10)
    assert answer.status_code in (200, 201, 204), answer.text
    return upload_id


def result_for(aws, profile, upload_id: str) -> dict | None:
    """The RESULTS message of ``upload_id`` within WAIT_SECONDS (deleted once read), or None."""
    url = queue_url(profile, C.RESULTS.name)
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        for message in aws["sqs"].receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                                  WaitTimeSeconds=1).get("Messages", []):
            body = json.loads(message["Body"])
            if body.get("upload_id") == upload_id:
                aws["sqs"].delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                return body
    return None


def test_runner_reports_healthy(poster_pipeline):
    """`make status` sees the part: its /health answers 200 on the profile's port."""
    assert http_status(f"{poster_pipeline.posters.url}/health") == 200


def test_uploaded_png_is_published(aws, poster_pipeline):
    """A PNG uploaded with a presigned POST comes out as two WebPs under posters/ in the web bucket, and
    poster.published with their paths arrives on RESULTS (the time it took is printed, not asserted)."""
    began = time.monotonic()
    upload_id = presigned_upload(aws, image_bytes("PNG", 900, 1350), "image/png", movie_id=41)
    result = result_for(aws, poster_pipeline.profile, upload_id)
    took = time.monotonic() - began
    print(f"\nposter upload -> poster.published: {took:.2f} s")
    paths = {size: f"/posters/41/{upload_id}/{size}.webp" for size in C.SIZES}
    assert result == {"type": C.POSTER_PUBLISHED, "movie_id": 41, "upload_id": upload_id, "poster": paths}
    for size, path in paths.items():
        stored = aws["s3"].get_object(Bucket=WEB_BUCKET, Key=path.lstrip("/"))
        assert (stored["ContentType"], stored["CacheControl"]) == ("image/webp", web.IMMUTABLE)
        with Image.open(io.BytesIO(stored["Body"].read())) as image:
            assert image.format == "WEBP" and image.size[1] == C.SIZES[size][1]


def test_uploaded_text_file_is_rejected(aws, poster_pipeline):
    """A text file posted as image/png is reported as poster.rejected, with the reason, and publishes nothing."""
    upload_id = presigned_upload(aws, b"definitely not a picture\n", "image/png", movie_id=42)
    result = result_for(aws, poster_pipeline.profile, upload_id)
    assert result == {"type": C.POSTER_REJECTED, "movie_id": 42, "upload_id": upload_id,
                      "reason": "the file is not a PNG image (it is not an image)"}
    listed = aws["s3"].list_objects_v2(Bucket=WEB_BUCKET, Prefix=f"posters/42/{upload_id}/")
    assert listed.get("KeyCount", 0) == 0


def test_every_pipe_has_its_dead_letter_queue(aws, poster_pipeline):
    """Each pipe in the emulator redrives to its own DLQ after MAX_RECEIVE_COUNT receives, with the contract's
    visibility timeout (what the filters' batchItemFailures rely on)."""
    for pipe in C.PIPES:
        attributes = aws["sqs"].get_queue_attributes(
            QueueUrl=queue_url(poster_pipeline.profile, pipe.name), AttributeNames=["All"]
        )["Attributes"]
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"].endswith(f":{pipe.dead_letter_queue}")
        assert int(redrive["maxReceiveCount"]) == C.MAX_RECEIVE_COUNT
        assert int(attributes["VisibilityTimeout"]) == C.VISIBILITY_TIMEOUT_SECONDS


def test_a_message_the_filter_cannot_process_ends_in_the_dead_letter_queue(aws, poster_pipeline):
    """A malformed message on VALIDATED fails in resize every time; the runner leaves it in the queue and
    after MAX_RECEIVE_COUNT receives the emulator moves it to poster-validated-dlq (visibility timeout cut to
    1 s for this test, restored after)."""
    sqs, profile = aws["sqs"], poster_pipeline.profile
    queue, dead_letters = queue_url(profile, C.VALIDATED.name), queue_url(profile, C.VALIDATED.dead_letter_queue)
    marker = f"poison-{uuid.uuid4().hex}"
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"VisibilityTimeout": "1"})
    time.sleep(POLL_SECONDS + 0.5)  # a receive already waiting took the queue's old timeout with it
    try:
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"movie_id": "not a number", "upload_id": marker}))
        deadline, found = time.monotonic() + 20, None
        while found is None and time.monotonic() < deadline:
            for message in sqs.receive_message(QueueUrl=dead_letters, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                               MessageSystemAttributeNames=["All"]).get("Messages", []):
                if marker in message["Body"]:
                    found = message
                    sqs.delete_message(QueueUrl=dead_letters, ReceiptHandle=message["ReceiptHandle"])
    finally:
        sqs.set_queue_attributes(QueueUrl=queue, Attributes={"VisibilityTimeout": str(C.VISIBILITY_TIMEOUT_SECONDS)})
    assert found is not None, "the poison message did not reach the dead-letter queue"
    assert int(found["Attributes"]["ApproximateReceiveCount"]) >= C.MAX_RECEIVE_COUNT
