"""Filter ``validate`` (reads UPLOADED): is the upload a poster? Re-encoded without metadata, or rejected.

For every ``ObjectCreated`` record of ``incoming/<movie>/<upload>`` (the ``s3:TestEvent`` S3 sends when the
notification is configured is ignored):

1. GET, and from its headers, before the body is read: size within ``MAX_UPLOAD_BYTES`` and content type one
   of ``CONTENT_TYPES`` (S3 enforces both through the presigned POST's policy; checked again because the local
   emulator does not, and because a check here costs nothing; one GET instead of HEAD + GET);
2. the body (at most ``MAX_UPLOAD_BYTES`` + 1 bytes read), magic bytes of the declared type, dimensions from
   the header (``MIN_SIDE``..``MAX_SIDE``, ``MAX_PIXELS``), then the full decode;
3. the pixels re-encoded in the same format, without EXIF, ICC profile or text chunks (EXIF orientation
   applied first), to ``validated/<movie>/<upload>``; ``{"movie_id", "upload_id", "bucket", "key"}`` to
   ``NEXT_QUEUE_URL`` (VALIDATED).

An unacceptable upload is reported as ``poster.rejected`` with the reason on ``RESULTS_QUEUE_URL``, and its
record is done. S3 or SQS unavailable fails the record (retried, then the dead-letter queue). Settings:
``UPLOAD_BUCKET``, ``NEXT_QUEUE_URL``, ``RESULTS_QUEUE_URL``. Permissions it needs: s3:GetObject on
``incoming/*``, s3:PutObject on ``validated/*`` of the uploads bucket, sqs:SendMessage on VALIDATED and RESULTS.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from contract import posters as C

from . import images
from .common import (
    NEXT_QUEUE_URL,
    UPLOAD_BUCKET,
    Malformed,
    Rejected,
    check_upload_id,
    handle_batch,
    log,
    reject,
    s3,
    send,
    setting,
)

NAME = "validate"
TEST_EVENT = "s3:TestEvent"
_CONTENT_TYPE_OF = {fmt: content_type for content_type, fmt in C.CONTENT_TYPES.items()}


def handler(event: Mapping[str, Any], context: Any = None) -> dict:
    """Lambda entry point: an SQS event of S3 notifications in, the records that failed out."""
    return handle_batch(NAME, event, _process)


def _process(record: Mapping[str, Any]) -> None:
    try:
        notification = json.loads(record["body"])
    except (KeyError, ValueError):
        raise Malformed("the message is not an S3 notification (not JSON)") from None
    if not isinstance(notification, dict):
        raise Malformed("the message is not an S3 notification")
    if notification.get("Event") == TEST_EVENT:
        log("INFO", "ignored the S3 test event", filter=NAME, bucket=notification.get("Bucket"))
        return
    s3_records = notification.get("Records")
    if not isinstance(s3_records, list):
        raise Malformed("the S3 notification has no Records")
    for s3_record in s3_records:
        _validate_object(s3_record)


def _upload_of(s3_record: Mapping[str, Any]) -> tuple[str, str, int, str] | None:
    """``(bucket, key, movie id, upload id)`` of a created upload; None for anything else (logged)."""
    try:
        event_name = s3_record["eventName"]
        bucket = s3_record["s3"]["bucket"]["name"]
        key = unquote_plus(s3_record["s3"]["object"]["key"])  # S3 URL-encodes keys in notifications
    except (KeyError, TypeError):
        raise Malformed("an S3 record without eventName, bucket or key") from None
    if not str(event_name).startswith("ObjectCreated"):
        log("INFO", "ignored an S3 event that creates nothing", filter=NAME, event=event_name, key=key)
        return None
    if bucket != setting(UPLOAD_BUCKET):
        raise Malformed(f"an event of bucket {bucket!r}, not of the uploads bucket")
    try:
        prefix, movie_id, upload_id = C.parse_key(key)
        check_upload_id(upload_id)
    except ValueError:
        prefix = None
    if prefix != C.INCOMING_PREFIX or key != C.incoming_key(movie_id, upload_id):
        # Nobody to tell: inventory never hands out such a key.
        log("WARNING", "ignored an object that is not an upload", filter=NAME, key=key)
        return None
    return bucket, key, movie_id, upload_id


def _validate_object(s3_record: Mapping[str, Any]) -> None:
    upload = _upload_of(s3_record)
    if upload is None:
        return
    bucket, key, movie_id, upload_id = upload
    try:
        response = s3().get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchKey":  # not NoSuchBucket: that one is retried
            reject(movie_id, upload_id, "the uploaded file is gone (deleted before it was checked)")
            return
        raise
    body = response["Body"]
    try:
        declared = response.get("ContentType", "")
        expected = images.check_declared(declared, response["ContentLength"])  # before reading a byte
        data = body.read(C.MAX_UPLOAD_BYTES + 1)
        images.check_declared(declared, len(data))
        clean = images.clean_copy(data, expected)
    except Rejected as rejected:
        reject(movie_id, upload_id, rejected.reason)
        return
    finally:
        body.close()
    output = C.stage_key(C.VALIDATED_PREFIX, movie_id, upload_id)
    s3().put_object(Bucket=bucket, Key=output, Body=clean, ContentType=_CONTENT_TYPE_OF[expected])
    # Sent even when a previous attempt wrote the same object: it may have died before this line.
    send(setting(NEXT_QUEUE_URL), {"movie_id": movie_id, "upload_id": upload_id, "bucket": bucket, "key": output})
    log("INFO", "poster validated", filter=NAME, movie_id=movie_id, upload_id=upload_id, key=output,
        bytes_in=len(data), bytes_out=len(clean))
