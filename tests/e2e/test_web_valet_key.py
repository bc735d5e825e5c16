"""The browser half of the valet key, against the emulator's real S3 (moto server): the page's upload code
sends a presigned POST's fields and then the file straight to the bucket, allowed by the site's CSP.

Independent of inventory's poster endpoint: the presigned POST is made here with boto3, as inventory makes it.
"""

from __future__ import annotations

import contextlib
import uuid

import boto3
import pytest

from contract.posters import FILE_FIELD
from local_system.emulator_api import DUMMY_KEY, REGION
from tests.e2e.browser_support import png

#: A bucket of this test only (the poster buckets belong to the pipeline's provisioning).
BUCKET = "web-valet-key-test"


@pytest.fixture
def s3(local_system):
    """boto3 S3 client of the test system's emulator, with the test bucket."""
    client = boto3.client(
        "s3", endpoint_url=local_system.identity.url, region_name=REGION,
        aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_KEY,
    )
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return client


def _upload_in_page(page, grant: dict, data: bytes, content_type: str) -> str:
    """Run the page's own uploadWithValetKey; '' on success, else the error it raised."""
    return page.evaluate(
        """async ([grant, bytes, type]) => {
            const { uploadWithValetKey } = await import('/assets/api.js');
            try {
                await uploadWithValetKey(grant, new File([new Uint8Array(bytes)], 'poster', { type }));
                return '';
            } catch (error) { return `${error.status} ${error.body}`; }
        }""",
        [grant, list(data), content_type],
    )


def test_page_uploads_with_the_presigned_post(page, site, s3):
    """The page posts every field of the presigned POST and then the file: the object lands under the key the
    server chose, with its bytes and content type, and the CSP lets the page reach the emulator."""
    key = f"incoming/1/{uuid.uuid4().hex}"
    grant = s3.generate_presigned_post(
        BUCKET, key, Fields={"Content-Type": "image/png"},
        Conditions=[{"Content-Type": "image/png"}, ["content-length-range", 1, 5 * 1024 * 1024]], ExpiresIn=300,
    )
    page.goto(site)
    data = png(64, 96)
    assert _upload_in_page(page, grant, data, "image/png") == ""
    stored = s3.get_object(Bucket=BUCKET, Key=key)
    assert stored["Body"].read() == data and stored["ContentType"] == "image/png"
    assert [p for p in page.problems if "CSP violation" in p] == []


def test_file_is_the_last_form_field(page, site):
    """The multipart form ends with the file field (S3 ignores fields after the file)."""
    grant = {"url": f"{site}/api/echo-form", "fields": {"key": "k", "policy": "p"}}
    page.goto(site)
    order = page.evaluate(
        """async (grant) => {
            let captured = null;
            const original = window.fetch;
            window.fetch = async (url, init) => { captured = [...init.body.keys()]; return new Response(null); };
            const { uploadWithValetKey } = await import('/assets/api.js');
            await uploadWithValetKey(grant, new File(['x'], 'poster', { type: 'image/png' }));
            window.fetch = original;
            return captured;
        }""",
        grant,
    )
    assert order == ["key", "policy", FILE_FIELD]
