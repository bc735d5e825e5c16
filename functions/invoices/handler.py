"""The invoicer's entry points: store the invoice of one ``order.confirmed`` body, or of an Amazon MQ batch.

:func:`invoice_for` renders the order's PDF and stores it at ``invoices/<order id>.pdf`` in ``INVOICES_BUCKET``
(private: no ACL, the bucket blocks public access; encrypted: ``ServerSideEncryption``; ``application/pdf``;
its sha256 in the object's metadata), then answers the claim check ``{"key", "sha256", "size"}``. Idempotent:
the key is the order's, and an invoice already stored is never written again (:func:`store_invoice`).

:func:`handler` is the Lambda entry point for the event source mapping of Amazon MQ for RabbitMQ: messages
come base64-encoded in ``rmqMessagesByQueue``; it answers one result per message. Publishing
``invoice.ready`` (:func:`events.invoice_ready` builds its body) is the caller's job.

Settings: ``INVOICES_BUCKET``; boto3 reads its own (``AWS_REGION``; locally ``AWS_ENDPOINT_URL_S3``).
Permissions: s3:GetObject (for HeadObject) and s3:PutObject on ``invoices/*`` of the invoices bucket only.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from contract import claim_check as CC
from contract import invoices as C

from .events import Malformed, claim_check, invoice_ready, parse_confirmed
from .render import render

INVOICES_BUCKET = "INVOICES_BUCKET"
#: Metadata key (``x-amz-meta-sha256``) of the stored document's sha256, hex.
SHA256_METADATA = "sha256"
#: Server-side encryption of every invoice (SSE-S3; the bucket's default may be stricter, this is the floor).
ENCRYPTION = "AES256"
_CLIENT_CONFIG = Config(connect_timeout=3, read_timeout=20, retries={"max_attempts": 3, "mode": "standard"})


class MalformedBatch(Exception):
    """Some messages of a batch were malformed (the others are stored): raised so that the broker redelivers
    the batch and, past the queue's delivery limit, dead-letters the malformed ones. ``results`` has them all."""

    def __init__(self, results: list[dict[str, Any]]):
        bad = [r for r in results if r["status"] == "malformed"]
        super().__init__(f"{len(bad)} of {len(results)} messages are malformed: " + "; ".join(r["error"] for r in bad))
        self.results = results


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


def invoice_for(body: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """Render and store the invoice of an ``order.confirmed`` body; its claim check ``{"key", "sha256", "size"}``.

    Malformed for a body that is not such an event; S3 errors propagate (retried by the caller).
    """
    line = parse_confirmed(body)
    return store_invoice(bucket(), C.invoice_key(line.order_id), render(line))


# -- Amazon MQ for RabbitMQ ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MqMessage:
    """One message of an Amazon MQ (RabbitMQ) Lambda event: its queue, body and headers."""

    queue: str
    body: bytes
    headers: Mapping[str, Any]
    redelivered: bool


def header_value(value: Any) -> Any:
    """A header as Lambda hands it over: RabbitMQ strings arrive as ``{"bytes": [...]}``; decoded to str."""
    if isinstance(value, Mapping) and isinstance(value.get("bytes"), list):
        try:
            return bytes(value["bytes"]).decode("utf-8")
        except (ValueError, TypeError):
            raise Malformed("a header's bytes are not UTF-8") from None
    return value


def mq_messages(event: Any) -> list[MqMessage]:
    """The messages of an Amazon MQ for RabbitMQ event (``rmqMessagesByQueue``: ``"<queue>::<vhost>"`` -> list
    of ``{"basicProperties": {"headers", ...}, "redelivered", "data": <base64>}``); Malformed otherwise."""
    if not isinstance(event, Mapping) or not isinstance(event.get("rmqMessagesByQueue"), Mapping):
        raise Malformed("not an Amazon MQ for RabbitMQ event: no rmqMessagesByQueue object")
    messages = []
    for queue, items in event["rmqMessagesByQueue"].items():
        if not isinstance(items, list):
            raise Malformed(f"rmqMessagesByQueue[{queue!r}] is not a list")
        for item in items:
            if not isinstance(item, Mapping) or not isinstance(item.get("data"), str):
                raise Malformed(f"a message of {queue!r} has no base64 data")
            try:
                body = base64.b64decode(item["data"], validate=True)
            except (binascii.Error, ValueError):
                raise Malformed(f"a message of {queue!r} has data that is not base64") from None
            properties = item.get("basicProperties") or {}
            headers = (properties.get("headers") or {}) if isinstance(properties, Mapping) else {}
            if not isinstance(headers, Mapping):
                raise Malformed(f"a message of {queue!r} has headers that are not an object")
            decoded = {name: header_value(value) for name, value in headers.items()}
            messages.append(MqMessage(queue.split("::")[0], body, decoded, bool(item.get("redelivered"))))
    return messages


def process(message: MqMessage) -> dict[str, Any]:
    """The result of one message: ``{"status": "ready", "invoice_ready": <event body>}`` or
    ``{"status": "malformed", "error": <reason>}``. S3 errors propagate."""
    try:
        if message.headers.get(CC.HEADER) is not None:
            # order.confirmed is a few hundred bytes, far under the claim-check threshold: not one of ours.
            raise Malformed("order.confirmed never travels by claim check; this message does")
        line = parse_confirmed(message.body)
    except Malformed as exc:
        log("ERROR", "malformed message", queue=message.queue, redelivered=message.redelivered, error=str(exc))
        return {"status": "malformed", "error": str(exc)}
    claim = store_invoice(bucket(), C.invoice_key(line.order_id), render(line))
    return {"status": "ready", "invoice_ready": invoice_ready(line.order_id, claim, line.ordered_at)}


def handler(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point (Amazon MQ for RabbitMQ): ``{"results": [...]}``, one per message, in order.

    Every well-formed message is stored before anything is raised. Then, if any was malformed,
    :class:`MalformedBatch` is raised: Lambda's RabbitMQ source acknowledges a batch only when the function
    succeeds, so the broker redelivers it and, past the queue's delivery limit, dead-letters it. With a batch
    size of 1 (the mapping's setting) that is the malformed message alone. A malformed event (no messages to
    speak of) raises Malformed; S3 unavailable raises its error (the batch is redelivered: storing is idempotent).
    """
    results = [process(message) for message in mq_messages(event)]
    if any(result["status"] == "malformed" for result in results):
        raise MalformedBatch(results)
    return {"results": results}
