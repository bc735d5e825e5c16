"""Filter ``publish`` (reads RESIZED): the sizes to the web content bucket, then ``poster.published``.

For ``{"movie_id", "upload_id", "bucket", "keys"}``: copy every size to ``posters/<movie>/<upload>/<size>.webp``
in ``WEB_BUCKET`` (served at ``/posters/*`` on the web origin) with ``Content-Type: image/webp`` and
``Cache-Control: contract.web.IMMUTABLE`` (an upload's URLs never change content: a new poster is a new
upload id), then send ``{"type": "poster.published", "movie_id", "upload_id", "poster": {<size>:
"/posters/..."}}`` to ``RESULTS_QUEUE_URL``. Repeating it rewrites the same objects and sends the same message;
inventory applies it once. Failures fail the record (retried, then the dead-letter queue). Settings:
``UPLOAD_BUCKET``, ``WEB_BUCKET``, ``RESULTS_QUEUE_URL``. Permissions: s3:GetObject on ``resized/*`` of the
uploads bucket, s3:PutObject on ``posters/*`` of the web bucket, sqs:SendMessage on RESULTS.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contract import posters as C
from contract import web

from .common import (
    RESULTS_QUEUE_URL,
    UPLOAD_BUCKET,
    WEB_BUCKET,
    Malformed,
    handle_batch,
    log,
    s3,
    send,
    setting,
    stage_message,
)
from .resize import WEBP_CONTENT_TYPE

NAME = "publish"


def handler(event: Mapping[str, Any], context: Any = None) -> dict:
    """Lambda entry point: an SQS event of RESIZED messages in, the records that failed out."""
    return handle_batch(NAME, event, _process)


def published_key(movie_id: int, upload_id: str, size: str) -> str:
    """Key of one published size in the web bucket (its URL path is ``/`` + the key)."""
    return C.stage_key(C.PUBLISHED_PREFIX, movie_id, upload_id, f"{size}.{C.PUBLISHED_EXTENSION}")


def _process(record: Mapping[str, Any]) -> None:
    message = stage_message(record.get("body", ""), "keys")
    movie_id, upload_id, bucket, keys = message["movie_id"], message["upload_id"], message["bucket"], message["keys"]
    expected = {
        size: C.stage_key(C.RESIZED_PREFIX, movie_id, upload_id, f"{size}.{C.PUBLISHED_EXTENSION}") for size in C.SIZES
    }
    if bucket != setting(UPLOAD_BUCKET) or keys != expected:
        raise Malformed(f"not the resized sizes of upload {upload_id}: {bucket} {keys!r}")
    web_bucket = setting(WEB_BUCKET)
    poster = {}
    for size, key in keys.items():
        target = published_key(movie_id, upload_id, size)
        s3().copy_object(
            Bucket=web_bucket,
            Key=target,
            CopySource={"Bucket": bucket, "Key": key},
            MetadataDirective="REPLACE",
            ContentType=WEBP_CONTENT_TYPE,
            CacheControl=web.IMMUTABLE,
        )
        poster[size] = f"/{target}"
    send(setting(RESULTS_QUEUE_URL), {
        "type": C.POSTER_PUBLISHED, "movie_id": movie_id, "upload_id": upload_id, "poster": poster,
    })
    log("INFO", "poster published", filter=NAME, movie_id=movie_id, upload_id=upload_id, poster=poster)
