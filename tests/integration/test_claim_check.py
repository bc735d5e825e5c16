"""The shared claim check (services/common/claim_check.py) against S3 (the ``s3_emulator`` moto server, 26630).

Bodies up to 64 KiB travel inline, larger ones by reference to ``claim-checks/<sha256>``; the consumer gets the
same bytes back, or a ClaimCheckError it dead-letters when the object is gone or changed. Run under
``flock /tmp/test-servers.lock``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import boto3
import pytest

from common import claim_check
from common.claim_check import ClaimCheckError
from contract import claim_check as C

REGION = "eu-west-1"
BUCKET = "movies-test-claim-checks"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def s3(s3_emulator: str) -> object:
    """An empty emulator with the claim-check bucket; a boto3 client to look at it."""
    urllib.request.urlopen(urllib.request.Request(f"{s3_emulator}/moto-api/reset", method="POST"), timeout=10).close()  # noqa: S310
    client = boto3.client("s3", endpoint_url=s3_emulator, region_name=REGION,
                          aws_access_key_id="local", aws_secret_access_key="local")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return client


@pytest.fixture
def store(s3_emulator: str, s3) -> claim_check.Store:
    return claim_check.s3_store(BUCKET, endpoint_url=s3_emulator, region=REGION)


@pytest.fixture
def fetch(s3_emulator: str, s3) -> claim_check.Fetch:
    return claim_check.s3_fetch(endpoint_url=s3_emulator, region=REGION)


@pytest.fixture(autouse=True)
def dummy_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The helper's clients use boto3's own credential chain: the emulator's dummy keys, never real ones."""
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")


def event_of(size: int) -> bytes:
    """A JSON event body of exactly ``size`` bytes (varied content, so a flipped byte shows)."""
    head, tail = b'{"type": "test.large", "padding": "', b'"}'
    filler = hashlib.sha256(str(size).encode()).hexdigest().encode() * (size // 64 + 1)
    return head + filler[: size - len(head) - len(tail)] + tail


def keys(client) -> list[str]:
    return [item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_100_kib_body_travels_by_reference_and_unwraps_to_the_same_bytes(s3, store, fetch):
    """A 100 KiB body is stored under claim-checks/<sha256>; the message is a small reference with the header,
    and unwrap gives back the very same bytes."""
    body = event_of(100 * 1024)
    message, headers = claim_check.wrap(body, store)
    sha256 = hashlib.sha256(body).hexdigest()
    assert headers == {C.HEADER: C.HEADER_VALUE}
    assert json.loads(message) == {"claim_check": {"bucket": BUCKET, "key": f"claim-checks/{sha256}",
                                                   "sha256": sha256, "size": len(body)}}
    assert len(message) < 300
    assert keys(s3) == [f"claim-checks/{sha256}"]
    assert claim_check.unwrap(message, headers, fetch) == body


def test_stored_body_is_encrypted(s3, store):
    """The stored body is server-side encrypted."""
    claim_check.wrap(event_of(70_000), store)
    (key,) = keys(s3)
    assert s3.head_object(Bucket=BUCKET, Key=key)["ServerSideEncryption"] == "AES256"


def test_exactly_64_kib_travels_inline(s3, store, fetch):
    """A body of exactly 65,536 bytes is sent as it is, without header, and nothing is stored."""
    body = event_of(C.MAX_INLINE_BYTES)
    assert len(body) == 65536
    assert claim_check.wrap(body, store) == (body, {})
    assert keys(s3) == []
    assert claim_check.unwrap(body, {}, fetch) == body


def test_one_byte_over_64_kib_travels_by_reference(s3, store, fetch):
    """A body of 65,537 bytes travels by reference, and comes back whole."""
    body = event_of(C.MAX_INLINE_BYTES + 1)
    message, headers = claim_check.wrap(body, store)
    assert headers and message != body and len(keys(s3)) == 1
    assert claim_check.unwrap(message, headers, fetch) == body


def test_small_body_travels_inline(s3, store, fetch):
    """A small event is sent as it is; unwrap without the header returns it untouched (even when it looks like
    a reference)."""
    body = b'{"claim_check": {"bucket": "elsewhere"}}'
    assert claim_check.wrap(body, store) == (body, {})
    assert claim_check.unwrap(body, None, fetch) == body
    assert keys(s3) == []


def test_same_body_twice_is_one_object(s3, store):
    """Publishing the same large body twice stores it once (the key is its checksum) and gives the same reference."""
    body = event_of(80_000)
    assert claim_check.wrap(body, store) == claim_check.wrap(body, store)
    assert len(keys(s3)) == 1


def test_tampered_object_is_a_mismatch(s3, store, fetch):
    """When the stored bytes were changed (same size, one byte flipped), unwrap raises ClaimCheckError 'mismatch'."""
    body = event_of(100 * 1024)
    message, headers = claim_check.wrap(body, store)
    key = json.loads(message)["claim_check"]["key"]
    s3.put_object(Bucket=BUCKET, Key=key, Body=body[:-3] + b"X" + body[-2:])
    with pytest.raises(ClaimCheckError, match="another sha256") as raised:
        claim_check.unwrap(message, headers, fetch)
    assert raised.value.kind == "mismatch"


def test_truncated_object_is_a_mismatch(s3, store, fetch):
    """Stored bytes of another size raise ClaimCheckError 'mismatch' naming both sizes."""
    body = event_of(100 * 1024)
    message, headers = claim_check.wrap(body, store)
    s3.put_object(Bucket=BUCKET, Key=json.loads(message)["claim_check"]["key"], Body=body[:1000])
    with pytest.raises(ClaimCheckError, match="1000 bytes stored, 102400 expected"):
        claim_check.unwrap(message, headers, fetch)


def test_missing_object_is_a_clear_error(s3, store, fetch):
    """A reference whose object is gone raises ClaimCheckError 'missing' (dead-lettered, not retried forever)."""
    message, headers = claim_check.wrap(event_of(100 * 1024), store)
    s3.delete_object(Bucket=BUCKET, Key=json.loads(message)["claim_check"]["key"])
    with pytest.raises(ClaimCheckError, match="no such object") as raised:
        claim_check.unwrap(message, headers, fetch)
    assert raised.value.kind == "missing"


@pytest.mark.parametrize(
    "reference",
    [
        b"not json",
        b'{"claim_check": {"bucket": "b"}}',
        json.dumps({"claim_check": {"bucket": BUCKET, "key": "invoices/secret.pdf", "sha256": "ab" * 32,
                                    "size": 70000}}).encode(),
        json.dumps({"claim_check": {"bucket": BUCKET, "key": "claim-checks/" + "ab" * 32, "sha256": "ab" * 32,
                                    "size": 10}}).encode(),
        b"x" * 5000,
    ],
    ids=["not-json", "incomplete", "key-outside-claim-checks", "size-under-the-limit", "too-long"],
)
def test_malformed_reference_is_refused_without_fetching(s3, reference):
    """A message marked as a claim check whose body is no valid reference raises ClaimCheckError 'malformed'
    before anything is fetched (a reference cannot make the consumer read another key)."""
    fetched = []
    with pytest.raises(ClaimCheckError) as raised:
        claim_check.unwrap(reference, {C.HEADER: C.HEADER_VALUE}, lambda bucket, key: fetched.append(key) or b"")
    assert raised.value.kind == "malformed" and fetched == []


def test_importing_the_helper_loads_no_boto3():
    """Importing common.claim_check (and wrapping a small body) does not import boto3: a service that never
    sends a large event never pays for it."""
    code = ("import sys; from common import claim_check; "
            "claim_check.wrap(b'{}', claim_check.s3_store('b')); print('boto3' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "services", capture_output=True, text=True,
                            check=True, env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'services'}"})
    assert result.stdout.strip() == "False"
