"""The valet key of a poster upload: a presigned S3 POST for one movie, one content type, one key.

The browser sends the form straight to the uploads bucket; the API never carries the bytes. The policy S3
enforces: exactly the key chosen here (``contract.posters.incoming_key``), exactly the content type asked for,
1 byte to ``MAX_UPLOAD_BYTES``, valid for ``UPLOAD_EXPIRES_SECONDS``. The pipeline (``functions/posters``)
takes it from there and reports back on the results queue (``inventory.poster_results``).
"""

from __future__ import annotations

import os
import time
from typing import Any

from common.config import env_str
from contract import environment as env
from contract import posters
from inventory import aws


def new_upload_id() -> str:
    """13 digits of epoch milliseconds and 16 random hex digits: unique, and sorting by text sorts by time, so
    the newest upload wins when results arrive out of order."""
    return f"{int(time.time() * 1000):013d}{os.urandom(8).hex()}"


#: Where ``create_app`` keeps the uploads bucket it read (``app.config``); empty when posters are off.
UPLOAD_BUCKET_CONFIG = "POSTER_UPLOAD_BUCKET"


def upload_bucket() -> str:
    """The uploads bucket from the environment; empty when posters are off (POSTER_UPLOAD_BUCKET unset)."""
    return env_str(env.POSTER_UPLOAD_BUCKET)


def presigned_upload(bucket: str, movie_id: int, upload_id: str, content_type: str) -> dict[str, Any]:
    """The answer of ``POST /api/movies/<id>/poster``: boto3's presigned POST (``url``, ``fields``) plus the
    upload's id, key and lifetime. Signing is local: no call to S3 is made."""
    key = posters.incoming_key(movie_id, upload_id)
    presigned = aws.client("s3").generate_presigned_post(
        Bucket=bucket,
        Key=key,  # boto3 adds the exact-key condition itself
        Fields={"Content-Type": content_type},
        Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, posters.MAX_UPLOAD_BYTES]],
        ExpiresIn=posters.UPLOAD_EXPIRES_SECONDS,
    )
    return {
        "url": presigned["url"],
        "fields": presigned["fields"],
        "upload_id": upload_id,
        "key": key,
        "expires_in": posters.UPLOAD_EXPIRES_SECONDS,
    }
