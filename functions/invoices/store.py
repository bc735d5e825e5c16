"""Storing an invoice: ``invoices/<order id>.pdf`` in ``INVOICES_BUCKET``, once, private, encrypted.

:func:`store_invoice` writes the PDF (no ACL: the bucket blocks public access; ``ServerSideEncryption``;
``application/pdf``; its sha256 in the object's metadata) and answers the claim check ``{"key", "sha256",
"size"}``. Idempotent: the key is the order's, and an invoice already stored is never written again.

Settings: ``INVOICES_BUCKET``; boto3 reads its own (``AWS_REGION``; locally ``AWS_ENDPOINT_URL_S3``).
Permissions: s3:GetObject (for HeadObject) and s3:PutObject on ``invoices/*`` of the invoices bucket only.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import sys
import time
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from contract import invoices as C

from .events import claim_check

INVOICES_BUCKET = C.BUCKET_SETTING
#: Metadata key (``x-amz-meta-sha256``) of the stored document's sha256, hex.
SHA256_METADATA = "sha256"
#: Server-side encryption of every invoice (SSE-S3; the bucket's default may be stricter, this is the floor).
ENCRYPTION = "AES256"
_CLIENT_CONFIG = Config(connect_timeout=3, read_timeout=20, retries={"max_attempts": 3, "mode": "standard"})


def log(level: str, message: str, **fields: Any) -> None:
    """One JSON line on stdout (CloudWatch Logs on Lambda, the part's log file locally)."""
    line = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": level, "message": message}
    print(json.dumps({**line, **fields}, default=str), file=sys.stdout, flush=True)


@functools.cache
def s3():
    """The S3 client of this container (built once: its connection pool outlives one invocation)."""
    return boto3.client("s3", config=_CLIENT_CONFIG)


def bucket() -> str:
    """The invoices bucket; a missing setting is a deployment error (every message fails, none is lost)."""
    name = os.environ.get(INVOICES_BUCKET, "")
    if not name:
        raise RuntimeError(f"{INVOICES_BUCKET} is not set")
    return name


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _stored(bucket_name: str, key: str) -> dict[str, Any] | None:
    """The claim check of the object at ``key``, or None when there is none."""
    try:
        head = s3().head_object(Bucket=bucket_name, Key=key)
    except ClientError as exc:
        if _status(exc) == 404:
            return None
        raise
    sha256 = head.get("Metadata", {}).get(SHA256_METADATA)
    if not sha256:  # not written by us (by hand?): its checksum is whatever its bytes are
        body = s3().get_object(Bucket=bucket_name, Key=key)["Body"]
        try:
            sha256 = hashlib.sha256(body.read()).hexdigest()
        finally:
            body.close()
    return {"key": key, "sha256": sha256, "size": head["ContentLength"]}


def store_invoice(bucket_name: str, key: str, document: bytes) -> dict[str, Any]:
    """Store ``document`` at ``key`` unless an invoice is there already; the claim check of what is stored.

    An issued invoice is never rewritten: when the object exists, its claim check is the answer (the same
    sha256 when the renderer is deterministic, as it is; another one only if the order's data or fpdf2 changed
    since, which is logged). The write itself is conditional (``If-None-Match: *``), so two invoicers racing
    on one order store one object, one version.
    """
    claim = claim_check(key, document)
    existing = _stored(bucket_name, key)
    if existing is None:
        try:
            s3().put_object(
                Bucket=bucket_name, Key=key, Body=document, ContentType=C.CONTENT_TYPE,
                ServerSideEncryption=ENCRYPTION, Metadata={SHA256_METADATA: claim["sha256"]},
                ChecksumSHA256=base64.b64encode(bytes.fromhex(claim["sha256"])).decode(),  # S3 verifies the bytes
                IfNoneMatch="*",
            )
            log("INFO", "invoice stored", key=key, sha256=claim["sha256"], size=claim["size"])
            return claim
        except ClientError as exc:
            if _status(exc) not in (409, 412):  # 412: stored meanwhile; 409: a concurrent conditional write
                raise
            existing = _stored(bucket_name, key)
            if existing is None:
                raise
    if existing["sha256"] != claim["sha256"]:
        log("WARNING", "an invoice is stored already with other bytes; kept", key=key,
            stored_sha256=existing["sha256"], rendered_sha256=claim["sha256"])
    else:
        log("INFO", "invoice stored already", key=key, sha256=claim["sha256"])
    return existing


