"""The claim check: an event body over 64 KiB travels as a reference to S3, never through the broker.

The publisher calls :func:`wrap` on every body: up to ``contract.claim_check.MAX_INLINE_BYTES`` it is sent as
it is (no header); above, it is stored once under ``claim-checks/<sha256>`` and the message carries only
``{"claim_check": {"bucket", "key", "sha256", "size"}}`` with the header ``x-claim-check: s3-v1``. The
consumer calls :func:`unwrap` on every message: without the header the body is the event; with it, the object
is fetched and its size and sha256 are checked before a byte is used. A reference that is not one, an object
that is gone or bytes that differ raise :class:`ClaimCheckError` (``kind`` says which): the consumer
dead-letters the message (no retry brings the object back or changes its bytes). S3 being unreachable raises
:class:`StorageUnavailable` instead: that one is worth a retry.

``wrap`` and ``unwrap`` take the storage as two callables, so any store fits: :func:`s3_store` and
:func:`s3_fetch` are the S3 ones. boto3 is imported only when they first touch S3: a service that never sends
a large event never pays for it (see ``services/inventory/aws.py`` for the figures).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from common.config import env_str
from contract import claim_check as C
from contract import environment as env

#: ``store(key, body)`` stores ``body`` under ``key`` and answers the bucket it is in.
Store = Callable[[str, bytes], str]
#: ``fetch(bucket, key)`` answers the object's bytes; :class:`ClaimCheckError` (kind ``missing``) when absent.
Fetch = Callable[[str, str], bytes]

_SHA256 = re.compile(r"[0-9a-f]{64}")
#: Largest reference accepted: a few hundred bytes in practice.
_MAX_REFERENCE_BYTES = 4096


class StorageUnavailable(ConnectionError):
    """S3 could not be reached or refused the call (throttled, denied, a network error): worth a retry, unlike
    :class:`ClaimCheckError`. A ``ConnectionError``, so consumers treat it as the broker or database away."""


class ClaimCheckError(ValueError):
    """A claim check that cannot be redeemed; ``kind``: ``malformed``, ``missing`` or ``mismatch``."""

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind


def wrap(body: bytes, store: Store) -> tuple[bytes, dict[str, str]]:
    """``(body to send, headers to add)``: ``body`` itself and no headers up to ``MAX_INLINE_BYTES`` (64 KiB,
    inclusive); above, a reference to where ``store`` put it, and the claim-check header."""
    if len(body) <= C.MAX_INLINE_BYTES:
        return body, {}
    sha256 = hashlib.sha256(body).hexdigest()
    key = C.key_of(sha256)
    bucket = store(key, body)
    reference = {"claim_check": {"bucket": bucket, "key": key, "sha256": sha256, "size": len(body)}}
    return json.dumps(reference, sort_keys=True).encode(), {C.HEADER: C.HEADER_VALUE}


def is_claim_check(headers: Mapping[str, Any] | None) -> bool:
    """True when a message with these headers carries a claim check (any value of the header counts)."""
    return bool(headers) and headers.get(C.HEADER) is not None


def reference_of(body: bytes) -> dict[str, Any]:
    """The ``claim_check`` object of a reference body, checked; ClaimCheckError (malformed) otherwise."""
    if len(body) > _MAX_REFERENCE_BYTES:
        raise ClaimCheckError(f"a claim check of {len(body)} bytes is not a reference", "malformed")
    try:
        reference = json.loads(body)["claim_check"]
        bucket, key, sha256, size = (reference[name] for name in ("bucket", "key", "sha256", "size"))
    except (ValueError, KeyError, TypeError):
        shape = "{claim_check: {bucket, key, sha256, size}}"
        raise ClaimCheckError(f"the claim check is not {shape}", "malformed") from None
    if not isinstance(bucket, str) or not bucket:
        raise ClaimCheckError(f"the claim check's bucket is not a name: {bucket!r}", "malformed")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256) or key != C.key_of(sha256):
        # Only keys of the claim-check layout are fetched: a reference cannot point the consumer elsewhere.
        raise ClaimCheckError(f"the claim check's key {key!r} is not {C.KEY_PREFIX}<its sha256>", "malformed")
    if isinstance(size, bool) or not isinstance(size, int) or size <= C.MAX_INLINE_BYTES:
        raise ClaimCheckError(f"the claim check's size {size!r} is not above the inline limit", "malformed")
    return {"bucket": bucket, "key": key, "sha256": sha256, "size": size}


def unwrap(body: bytes, headers: Mapping[str, Any] | None, fetch: Fetch) -> bytes:
    """The event's body: ``body`` itself without the claim-check header; else the referenced object, checked.

    Raises ClaimCheckError: ``malformed`` (not a reference), ``missing`` (``fetch`` found no object),
    ``mismatch`` (the object's size or sha256 is not the reference's: changed or corrupted).
    """
    if not is_claim_check(headers):
        return body
    reference = reference_of(body)
    stored = fetch(reference["bucket"], reference["key"])
    if len(stored) != reference["size"]:
        raise ClaimCheckError(
            f"claim check {reference['key']}: {len(stored)} bytes stored, {reference['size']} expected", "mismatch"
        )
    if hashlib.sha256(stored).hexdigest() != reference["sha256"]:
        raise ClaimCheckError(f"claim check {reference['key']}: the stored bytes have another sha256", "mismatch")
    return stored


# -- S3 --------------------------------------------------------------------------------------------------------
_clients: dict[str, Any] = {}
_lock = threading.Lock()


def _s3(endpoint_url: str | None, region: str | None) -> Any:
    """One S3 client per endpoint and region for the process (boto3 imported on first use)."""
    name = f"{endpoint_url}|{region}"
    with _lock:
        if name not in _clients:
            import boto3
            from botocore.config import Config

            config = Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"})
            _clients[name] = boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
        return _clients[name]


def s3_store(bucket: str, *, endpoint_url: str | None = None, region: str | None = None) -> Store:
    """A Store that puts bodies into ``bucket`` (encrypted at rest; the key is the sha256, so a body published
    twice is one object). ``endpoint_url``: the emulator's locally, None on AWS."""

    def store(key: str, body: bytes) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            _s3(endpoint_url, region).put_object(
                Bucket=bucket, Key=key, Body=body, ContentType=C.STORED_CONTENT_TYPE, ServerSideEncryption="AES256"
            )
        except (BotoCoreError, ClientError) as exc:
            raise StorageUnavailable(f"claim check {bucket}/{key} not stored: {exc}") from exc
        return bucket

    return store


def s3_fetch(*, endpoint_url: str | None = None, region: str | None = None) -> Fetch:
    """A Fetch that reads objects from S3; a missing object or bucket is ClaimCheckError (``missing``)."""

    def fetch(bucket: str, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = _s3(endpoint_url, region).get_object(Bucket=bucket, Key=key)
            stream = response["Body"]
            try:
                return stream.read()
            finally:
                stream.close()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "NoSuchBucket", "404"):
                raise ClaimCheckError(f"claim check {bucket}/{key}: no such object ({code})", "missing") from None
            raise StorageUnavailable(f"claim check {bucket}/{key} not read: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"claim check {bucket}/{key} not read: {exc}") from exc

    return fetch


def from_env() -> tuple[Store | None, Fetch | None]:
    """This process's claim check, from ``CLAIM_CHECK_BUCKET`` (and S3's endpoint and region): ``(store,
    fetch)`` for the outbox relay and the saga consumer, or ``(None, None)`` when the bucket is not set (large
    events then travel inline, and a claim check that arrives is dead-lettered as unredeemable).

    The fetch redeems references to that bucket only: a message cannot make a service read another bucket.
    """
    bucket = env_str(env.CLAIM_CHECK_BUCKET)
    if not bucket:
        return None, None
    endpoint, region = env_str(env.AWS_ENDPOINT_URL_S3) or None, env_str(env.AWS_REGION) or None
    fetch_any = s3_fetch(endpoint_url=endpoint, region=region)

    def fetch(named_bucket: str, key: str) -> bytes:
        if named_bucket != bucket:
            raise ClaimCheckError(f"a claim check names bucket {named_bucket!r}, not this system's", "malformed")
        return fetch_any(named_bucket, key)

    return s3_store(bucket, endpoint_url=endpoint, region=region), fetch
