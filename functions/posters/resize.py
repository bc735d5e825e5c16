"""Filter ``resize`` (reads VALIDATED): one WebP per published size.

For ``{"movie_id", "upload_id", "bucket", "key"}``: GET the validated image, fit it into each box of
``contract.posters.SIZES`` (aspect ratio kept, never enlarged), write ``resized/<movie>/<upload>/<size>.webp``
and send ``{"movie_id", "upload_id", "bucket", "keys": {<size>: <key>}}`` to ``NEXT_QUEUE_URL`` (RESIZED).
Output keys depend only on movie and upload, so a repeated message rewrites the same objects. Anything that
goes wrong fails the record (retried, then the dead-letter queue): validate has already refused bad images.
Settings: ``UPLOAD_BUCKET``, ``NEXT_QUEUE_URL``. Permissions: s3:GetObject on ``validated/*``, s3:PutObject on
``resized/*`` of the uploads bucket, sqs:SendMessage on RESIZED.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contract import posters as C

from . import images
from .common import NEXT_QUEUE_URL, UPLOAD_BUCKET, Malformed, handle_batch, log, s3, send, setting, stage_message

NAME = "resize"
WEBP_CONTENT_TYPE = "image/webp"


def handler(event: Mapping[str, Any], context: Any = None) -> dict:
    """Lambda entry point: an SQS event of VALIDATED messages in, the records that failed out."""
    return handle_batch(NAME, event, _process)


def _process(record: Mapping[str, Any]) -> None:
    message = stage_message(record.get("body", ""), "key")
    movie_id, upload_id, bucket = message["movie_id"], message["upload_id"], message["bucket"]
    if bucket != setting(UPLOAD_BUCKET) or message["key"] != C.stage_key(C.VALIDATED_PREFIX, movie_id, upload_id):
        raise Malformed(f"not a validated upload: {bucket}/{message['key']}")
    data = s3().get_object(Bucket=bucket, Key=message["key"])["Body"].read()
    keys = {}
    for name, webp in images.webp_sizes(data).items():
        key = C.stage_key(C.RESIZED_PREFIX, movie_id, upload_id, f"{name}.{C.PUBLISHED_EXTENSION}")
        s3().put_object(Bucket=bucket, Key=key, Body=webp, ContentType=WEBP_CONTENT_TYPE)
        keys[name] = key
    send(setting(NEXT_QUEUE_URL), {"movie_id": movie_id, "upload_id": upload_id, "bucket": bucket, "keys": keys})
    log("INFO", "poster resized", filter=NAME, movie_id=movie_id, upload_id=upload_id, keys=keys)
