"""The invoicer against S3 (its own moto server, ``s3_emulator``, port 56630): stored once, private and
encrypted, replays change nothing, the Amazon MQ event shape, malformed input.

The handler runs in this process exactly as on Lambda: boto3 configured by ``AWS_ENDPOINT_URL_S3``, the bucket
from ``INVOICES_BUCKET``. Run under ``flock /tmp/test-servers.lock``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import urllib.request
from collections.abc import Iterator

import boto3
import pypdf
import pytest
from botocore.exceptions import ClientError

from contract import claim_check as CC
from contract import invoices as C
from functions.invoices import handler as invoicer
from functions.invoices.events import Malformed
from tests.functions.invoice_samples import ORDER_ID, confirmed, mq_event

REGION = "eu-west-1"
BUCKET = "movies-test-invoices"


@pytest.fixture
def s3(s3_emulator: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """An empty emulator with the invoices bucket (versioned, public access blocked, as on AWS), the invoicer's
    settings in the environment; a boto3 client to look at it."""
    urllib.request.urlopen(urllib.request.Request(f"{s3_emulator}/moto-api/reset", method="POST"), timeout=10).close()  # noqa: S310
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_emulator)
    monkeypatch.setenv(invoicer.INVOICES_BUCKET, BUCKET)
    invoicer.s3.cache_clear()
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    client.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
    })
    yield client
    invoicer.s3.cache_clear()  # never reused by a test with other endpoints


def versions(client, key: str) -> list[dict]:
    return client.list_object_versions(Bucket=BUCKET, Prefix=key).get("Versions", [])


def test_invoice_is_stored_under_the_orders_key_and_its_claim_check_returned(s3):
    """invoice_for stores a PDF naming the order at invoices/<order id>.pdf and answers key, sha256 and size
    of exactly those bytes."""
    claim = invoicer.invoice_for(json.dumps(confirmed()))
    key = f"invoices/{ORDER_ID}.pdf"
    stored = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert claim == {"key": key, "sha256": hashlib.sha256(stored).hexdigest(), "size": len(stored)}
    text = pypdf.PdfReader(io.BytesIO(stored)).pages[0].extract_text()
    assert ORDER_ID in text and "37.50 EUR" in text


def test_stored_invoice_is_encrypted_typed_private_and_carries_its_checksum(s3):
    """The object is application/pdf, server-side encrypted, has the sha256 in its metadata and grants
    nobody but the bucket owner."""
    claim = invoicer.invoice_for(confirmed())
    head = s3.head_object(Bucket=BUCKET, Key=claim["key"])
    assert head["ContentType"] == C.CONTENT_TYPE
    assert head["ServerSideEncryption"] == invoicer.ENCRYPTION
    assert head["Metadata"] == {invoicer.SHA256_METADATA: claim["sha256"]}
    grants = s3.get_object_acl(Bucket=BUCKET, Key=claim["key"])["Grants"]
    assert [grant["Grantee"].get("URI") for grant in grants] == [None]  # the owner only: no AllUsers/AuthUsers
    assert [grant["Permission"] for grant in grants] == ["FULL_CONTROL"]


def test_replay_stores_nothing_new(s3):
    """The same order.confirmed handled twice: one object version, the same ETag and the same claim check."""
    first = invoicer.invoice_for(confirmed())
    etag = s3.head_object(Bucket=BUCKET, Key=first["key"])["ETag"]
    second = invoicer.invoice_for(confirmed())
    assert second == first
    assert len(versions(s3, first["key"])) == 1
    assert s3.head_object(Bucket=BUCKET, Key=first["key"])["ETag"] == etag


def test_issued_invoice_is_never_rewritten(s3):
    """An invoice already stored for the order is kept even when the event renders other bytes (an issued
    invoice does not change): the answer is the stored one's claim check, still one version."""
    first = invoicer.invoice_for(confirmed())
    again = invoicer.invoice_for(confirmed(title="Another title"))
    assert again == first
    assert len(versions(s3, first["key"])) == 1


def test_conditional_write_loses_to_an_invoice_stored_meanwhile(s3):
    """When another invoicer stores the order's invoice between the check and the write, the conditional write
    fails and the stored one is answered (one version, not two)."""
    key = C.invoice_key(ORDER_ID)
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"%PDF-1.3 earlier", Metadata={"sha256": "ab" * 32})
    claim = invoicer.store_invoice(BUCKET, key, b"%PDF-1.3 later")
    assert claim == {"key": key, "sha256": "ab" * 32, "size": len(b"%PDF-1.3 earlier")}
    assert len(versions(s3, key)) == 1


def test_existing_object_without_checksum_metadata_is_hashed(s3):
    """An object put without our metadata (by hand) is answered with the sha256 of its bytes."""
    key = C.invoice_key(ORDER_ID)
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"%PDF-1.3 by hand")
    assert invoicer.invoice_for(confirmed())["sha256"] == hashlib.sha256(b"%PDF-1.3 by hand").hexdigest()


def test_mq_event_is_decoded_and_answers_invoice_ready_without_the_document(s3):
    """An Amazon MQ for RabbitMQ event (base64 data) gives one invoice.ready body per message whose data is the
    claim check only: a few hundred bytes, no PDF bytes in it."""
    result = invoicer.handler(mq_event(confirmed()), None)
    (only,) = result["results"]
    assert only["status"] == "ready"
    event = only["invoice_ready"]
    assert event["type"] == C.INVOICE_READY and event["order_id"] == ORDER_ID
    assert set(event["data"]) == {"key", "sha256", "size"}
    encoded = json.dumps(result)
    stored = s3.get_object(Bucket=BUCKET, Key=event["data"]["key"])["Body"].read()
    assert event["data"]["size"] == len(stored) and len(encoded) < 1024
    assert "%PDF" not in encoded and base64.b64encode(stored[:48]).decode()[:32] not in encoded


def test_mq_batch_of_two_orders_stores_two_invoices(s3):
    """Each message of a batch is its own invoice, answered in order."""
    other = "ab" * 32
    result = invoicer.handler(mq_event(confirmed(), confirmed(other)), None)
    assert [r["invoice_ready"]["order_id"] for r in result["results"]] == [ORDER_ID, other]
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]) == sorted(
        [C.invoice_key(ORDER_ID), C.invoice_key(other)])


def test_mq_replay_answers_the_same_event(s3):
    """The same batch delivered twice answers identical invoice.ready bodies (same event id, same checksum)."""
    assert invoicer.handler(mq_event(confirmed()), None) == invoicer.handler(mq_event(confirmed()), None)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"Records": []}, "no rmqMessagesByQueue"),
        ("not an event", "no rmqMessagesByQueue"),
        ({"rmqMessagesByQueue": {"q::/": "x"}}, "is not a list"),
        ({"rmqMessagesByQueue": {"q::/": [{"data": "***"}]}}, "not base64"),
        ({"rmqMessagesByQueue": {"q::/": [{"basicProperties": {}}]}}, "no base64 data"),
    ],
)
def test_malformed_mq_event_is_a_clear_error(s3, event, reason):
    """An event that is not Amazon MQ's shape raises Malformed naming the problem, and stores nothing."""
    with pytest.raises(Malformed, match=reason):
        invoicer.handler(event, None)
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_malformed_message_fails_the_batch_after_the_good_ones_are_stored(s3):
    """A batch with one malformed message: the good one is stored, then MalformedBatch is raised (so the broker
    redelivers and finally dead-letters it) with every message's result and the reason."""
    with pytest.raises(invoicer.MalformedBatch, match=r"1 of 2 messages are malformed: .*quantity") as raised:
        invoicer.handler(mq_event(confirmed(), confirmed("cd" * 32, quantity=0)), None)
    assert [r["status"] for r in raised.value.results] == ["ready", "malformed"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == [C.invoice_key(ORDER_ID)]


def test_claim_checked_order_confirmed_is_malformed(s3):
    """A message marked as a claim check (the header arrives as Lambda's byte list) is refused: order.confirmed
    is never that large, so it is not one of ours."""
    event = mq_event(confirmed(), headers={CC.HEADER: CC.HEADER_VALUE})
    with pytest.raises(invoicer.MalformedBatch, match="never travels by claim check"):
        invoicer.handler(event, None)


def test_missing_bucket_setting_fails_without_storing(s3, monkeypatch):
    """Without INVOICES_BUCKET the handler raises (a deployment error: the batch is redelivered, not lost)."""
    monkeypatch.delenv(invoicer.INVOICES_BUCKET)
    with pytest.raises(RuntimeError, match="INVOICES_BUCKET is not set"):
        invoicer.handler(mq_event(confirmed()), None)


def test_unreachable_bucket_raises_the_s3_error(s3, monkeypatch):
    """A bucket that does not exist is an S3 error raised as is (retried by redelivery), not a malformed message."""
    monkeypatch.setenv(invoicer.INVOICES_BUCKET, "movies-test-no-such-bucket")
    with pytest.raises(ClientError, match="NoSuchBucket"):
        invoicer.handler(mq_event(confirmed()), None)
