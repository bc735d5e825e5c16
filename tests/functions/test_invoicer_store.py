"""The invoicer against S3 (its own moto server, ``s3_emulator``) and the test RabbitMQ: stored once, private and
encrypted, replays change nothing, invoice.ready published with confirms, the Amazon MQ event shape, malformed
messages dead-lettered with their reason.

The handler runs in this process exactly as on Lambda: boto3 configured by ``AWS_ENDPOINT_URL_S3``, the bucket
from ``INVOICES_BUCKET``; its publisher uses an exchange and queues of the test's own (the saga's arguments and
bindings, other names), so the local system's consumers never see these events. Run under
``flock /tmp/test-servers.lock``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace

import boto3
import pika
import pypdf
import pytest
from botocore.exceptions import ClientError

from contract import claim_check as CC
from contract import invoices as C
from contract import messaging, saga
from functions.invoices import handler as invoicer
from functions.invoices import store
from functions.invoices.broker import BrokerSettings, Publisher, declare_saga
from functions.invoices.events import Malformed
from tests.functions.invoice_samples import ORDER_ID, PRINCIPAL, confirmed, mq_event

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
    monkeypatch.setenv(store.INVOICES_BUCKET, BUCKET)
    store.s3.cache_clear()
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    client.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True,
    })
    yield client
    store.s3.cache_clear()  # never reused by a test with other endpoints


@dataclass
class Broker:
    """The test's exchange, its billing queue (bound to invoice.ready) and invoicer queue, a publisher on them."""

    rabbitmq: object
    exchange: str
    billing: saga.SagaQueue
    invoicer: saga.SagaQueue
    publisher: Publisher

    def take(self, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
        """Every message now on ``queue`` (acknowledged: taken off it)."""
        taken = []
        with self.rabbitmq.channel() as channel:
            while True:
                method, properties, body = channel.basic_get(queue, auto_ack=True)
                if method is None:
                    return taken
                taken.append((properties, body))


@pytest.fixture
def broker(rabbitmq) -> Iterator[Broker]:
    """An exchange and two saga queues of this test on the test RabbitMQ, deleted afterwards."""
    suffix = uuid.uuid4().hex[:10]
    exchange = f"invoicer_it_{suffix}"
    billing = replace(saga.BILLING_EVENTS, name=f"invoicer_it_{suffix}.billing")
    invoicer_queue = replace(saga.INVOICER_EVENTS, name=f"invoicer_it_{suffix}.invoicer")
    login = rabbitmq.system.amqp_params()
    settings = BrokerSettings(f"amqp://127.0.0.1:{login['port']}/", user=login["username"],
                              password=login["password"])
    publisher = Publisher(settings, exchange=exchange, queues=(billing, invoicer_queue))
    with rabbitmq.channel() as channel:
        declare_saga(channel, exchange, (billing, invoicer_queue))
    yield Broker(rabbitmq, exchange, billing, invoicer_queue, publisher)
    publisher.close()
    rabbitmq.delete(billing.name, billing.dead_letter_queue, invoicer_queue.name, invoicer_queue.dead_letter_queue)
    with rabbitmq.channel() as channel:
        channel.exchange_delete(exchange)


def handle(body: dict, broker: Broker) -> saga.Event:
    """The invoicer's whole job for one message body."""
    return invoicer.handle(json.dumps(body).encode(), broker.publisher)


def versions(client, key: str) -> list[dict]:
    return client.list_object_versions(Bucket=BUCKET, Prefix=key).get("Versions", [])


def test_invoice_is_stored_under_the_orders_key_and_announced_by_its_claim_check(s3, broker):
    """handle stores a PDF naming the order at invoices/<order id>.pdf and its invoice.ready carries key,
    sha256 and size of exactly those bytes, and echoes the buyer's sub (billing's shard key)."""
    event = handle(confirmed(), broker)
    key = f"invoices/{ORDER_ID}.pdf"
    stored = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert event.data == {"key": key, "sha256": hashlib.sha256(stored).hexdigest(), "size": len(stored),
                          "principal": {"sub": PRINCIPAL["sub"], "name": None}}
    text = pypdf.PdfReader(io.BytesIO(stored)).pages[0].extract_text()
    assert ORDER_ID in text and "37.50 EUR" in text


def test_invoice_ready_is_published_persistent_with_its_id_and_type(s3, broker):
    """The event reaches the queue bound to invoice.ready: persistent, message_id = event id, type = event
    type, body the saga's envelope (parses with the AMQP fields checked)."""
    event = handle(confirmed(), broker)
    ((properties, body),) = broker.take(broker.billing.name)
    assert properties.delivery_mode == pika.DeliveryMode.Persistent.value
    assert (properties.message_id, properties.type) == (event.event_id, saga.INVOICE_READY)
    assert saga.parse_event(body, message_id=properties.message_id, routing_key=properties.type) == event


def test_stored_invoice_is_encrypted_typed_private_and_carries_its_checksum(s3, broker):
    """The object is application/pdf, server-side encrypted, has the sha256 in its metadata and grants
    nobody but the bucket owner."""
    claim = handle(confirmed(), broker).data
    head = s3.head_object(Bucket=BUCKET, Key=claim["key"])
    assert head["ContentType"] == C.CONTENT_TYPE
    assert head["ServerSideEncryption"] == store.ENCRYPTION
    assert head["Metadata"] == {store.SHA256_METADATA: claim["sha256"]}
    grants = s3.get_object_acl(Bucket=BUCKET, Key=claim["key"])["Grants"]
    assert [grant["Grantee"].get("URI") for grant in grants] == [None]  # the owner only: no AllUsers/AuthUsers
    assert [grant["Permission"] for grant in grants] == ["FULL_CONTROL"]


def test_replay_stores_nothing_new_and_announces_the_same_event(s3, broker):
    """The same order.confirmed handled twice: one object version, the same ETag, and two identical
    invoice.ready messages (same id, same body: the consumer's inbox ignores the second)."""
    first = handle(confirmed(), broker)
    etag = s3.head_object(Bucket=BUCKET, Key=first.data["key"])["ETag"]
    second = handle(confirmed(), broker)
    assert second == first
    assert len(versions(s3, first.data["key"])) == 1
    assert s3.head_object(Bucket=BUCKET, Key=first.data["key"])["ETag"] == etag
    published = broker.take(broker.billing.name)
    assert [body for _, body in published] == [first.body(), first.body()]


def test_issued_invoice_is_never_rewritten(s3, broker):
    """An invoice already stored for the order is kept even when the event renders other bytes (an issued
    invoice does not change): the answer is the stored one's claim check, still one version."""
    first = handle(confirmed(), broker)
    again = handle(confirmed(title="Another title"), broker)
    assert again.data == first.data
    assert len(versions(s3, first.data["key"])) == 1


def test_conditional_write_loses_to_an_invoice_stored_meanwhile(s3):
    """When another invoicer stores the order's invoice between the check and the write, the conditional write
    fails and the stored one is answered (one version, not two)."""
    key = C.invoice_key(ORDER_ID)
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"%PDF-1.3 earlier", Metadata={"sha256": "ab" * 32})
    claim = store.store_invoice(BUCKET, key, b"%PDF-1.3 later")
    assert claim == {"key": key, "sha256": "ab" * 32, "size": len(b"%PDF-1.3 earlier")}
    assert len(versions(s3, key)) == 1


def test_existing_object_without_checksum_metadata_is_hashed(s3, broker):
    """An object put without our metadata (by hand) is announced with the sha256 of its bytes."""
    key = C.invoice_key(ORDER_ID)
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"%PDF-1.3 by hand")
    assert handle(confirmed(), broker).data["sha256"] == hashlib.sha256(b"%PDF-1.3 by hand").hexdigest()


def test_mq_event_is_decoded_and_answers_invoice_ready_without_the_document(s3, broker):
    """An Amazon MQ for RabbitMQ event (base64 data) gives one invoice.ready per message whose data is the
    claim check (and the principal's sub, billing's shard key) only: a few hundred bytes, no PDF bytes in it."""
    result = invoicer.handler(mq_event(confirmed(), queue=broker.invoicer.name), None, publish=broker.publisher)
    (only,) = result["results"]
    assert only["status"] == "ready"
    event = only["invoice_ready"]
    assert event["type"] == saga.INVOICE_READY and event["order_id"] == ORDER_ID
    assert set(event["data"]) == {"key", "sha256", "size", "principal"}
    ((_, body),) = broker.take(broker.billing.name)
    stored = s3.get_object(Bucket=BUCKET, Key=event["data"]["key"])["Body"].read()
    assert event["data"]["size"] == len(stored) and len(body) < 1024
    assert b"%PDF" not in body and base64.b64encode(stored[:48])[:32] not in body


def test_mq_batch_of_two_orders_stores_two_invoices(s3, broker):
    """Each message of a batch is its own invoice, answered in order."""
    other = "ab" * 32
    result = invoicer.handler(mq_event(confirmed(), confirmed(other)), None, publish=broker.publisher)
    assert [r["invoice_ready"]["order_id"] for r in result["results"]] == [ORDER_ID, other]
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]) == sorted(
        [C.invoice_key(ORDER_ID), C.invoice_key(other)])


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
def test_malformed_mq_event_is_a_clear_error(s3, broker, event, reason):
    """An event that is not Amazon MQ's shape raises Malformed naming the problem, and stores nothing."""
    with pytest.raises(Malformed, match=reason):
        invoicer.handler(event, None, publish=broker.publisher)
    assert s3.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


def test_malformed_message_is_dead_lettered_with_its_reason_and_the_good_one_stored(s3, broker):
    """A batch with one malformed message: the good one is stored and announced, the malformed one moved to the
    queue's dead-letter queue with the reason and kind in contract.messaging's headers; the invocation
    succeeds (nothing to redeliver)."""
    bad = confirmed("cd" * 32, quantity=0)
    result = invoicer.handler(mq_event(confirmed(), bad, queue=broker.invoicer.name), None,
                              publish=broker.publisher)
    assert [r["status"] for r in result["results"]] == ["ready", "dead_lettered"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == [C.invoice_key(ORDER_ID)]
    ((properties, body),) = broker.take(broker.invoicer.dead_letter_queue)
    assert json.loads(body) == bad
    assert "quantity" in properties.headers[messaging.DEAD_LETTER_REASON]
    assert properties.headers[messaging.DEAD_LETTER_KIND] == "invalid_value"
    assert properties.headers[messaging.ORIGINAL_QUEUE] == broker.invoicer.name


def test_claim_checked_order_confirmed_is_dead_lettered(s3, broker):
    """A message marked as a claim check (the header arrives as Lambda's byte list) is refused: order.confirmed
    is never that large, so it is not one of ours."""
    event = mq_event(confirmed(), queue=broker.invoicer.name, headers={CC.HEADER: CC.HEADER_VALUE})
    (result,) = invoicer.handler(event, None, publish=broker.publisher)["results"]
    assert result["status"] == "dead_lettered" and "never travels by claim check" in result["error"]


def test_missing_bucket_setting_fails_without_storing_or_publishing(s3, broker, monkeypatch):
    """Without INVOICES_BUCKET the handler raises (a deployment error: the message is redelivered, not lost)."""
    monkeypatch.delenv(store.INVOICES_BUCKET)
    with pytest.raises(RuntimeError, match="INVOICES_BUCKET is not set"):
        invoicer.handler(mq_event(confirmed()), None, publish=broker.publisher)
    assert broker.take(broker.billing.name) == []


def test_unreachable_bucket_raises_the_s3_error_and_publishes_nothing(s3, broker, monkeypatch):
    """A bucket that does not exist is an S3 error raised as is (retried by redelivery), not a malformed
    message, and no invoice.ready is announced for a document that is not stored."""
    monkeypatch.setenv(store.INVOICES_BUCKET, "movies-test-no-such-bucket")
    with pytest.raises(ClientError, match="NoSuchBucket"):
        invoicer.handler(mq_event(confirmed()), None, publish=broker.publisher)
    assert broker.take(broker.billing.name) == []


def test_publisher_reconnects_after_its_connection_broke(s3, broker):
    """A publisher whose connection was closed under it (the broker restarted, a Lambda container thawed)
    opens a new one and the event is still confirmed and delivered."""
    handle(confirmed(), broker)
    broker.publisher._connection.close()
    handle(confirmed("ab" * 32), broker)
    assert len(broker.take(broker.billing.name)) == 2
