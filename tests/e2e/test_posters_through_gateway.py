"""Posters through the gateway on the full local system: the permission, the presigned upload to the emulator's
S3, and a result on the pipeline's results queue applied by the running inventory's consumer."""

from __future__ import annotations

import json
import secrets

import pytest
import requests

from contract import posters
from local_system.poster_resources import UPLOAD_BUCKET
from tests.integration.posters_support import client, ensure_bucket, ensure_queue, published, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def emulator_clients(local_system):
    """(s3, sqs) of the test emulator, with the uploads bucket and the results queue in place."""
    s3, sqs = client("s3", local_system.identity.url), client("sqs", local_system.identity.url)
    ensure_bucket(s3)
    ensure_queue(sqs, posters.RESULTS.name)
    return s3, sqs


@pytest.fixture
def viewer_headers(local_system) -> dict[str, str]:
    """Authorization of a user in the viewers group only (movies.read)."""
    username, password = f"viewer-{secrets.token_hex(4)}", f"Viewer-{secrets.token_urlsafe(10)}-1a"
    local_system.identity.add_user(username, password, ["viewers"])
    return {"Authorization": f"Bearer {local_system.identity.token(username, password)}"}


def test_requesting_an_upload_needs_movies_write(gateway, http, anonymous_http, viewer_headers):
    """A movies.read-only user reads the movie with its poster fields but gets 403 on POST .../poster."""
    movie = http.post(f"{gateway}/api/movies", json={"title": "read only"}).json()
    read = anonymous_http.get(f"{gateway}/api/movies/{movie['id']}", headers=viewer_headers)
    assert read.status_code == 200
    assert read.json()["poster"] is None and read.json()["poster_status"] is None
    refused = anonymous_http.post(
        f"{gateway}/api/movies/{movie['id']}/poster", json={"content_type": "image/png"},
        headers=viewer_headers,
    )
    assert refused.status_code == 403
    assert "movies.write" in refused.json()["error"]


def test_upload_through_the_gateway_and_result_applied_by_inventory(gateway, http, emulator_clients):
    """An editor gets the presigned POST through the gateway, uploads to the emulator's bucket (204), and a
    poster.published result on the results queue is applied by the running inventory (its consumer thread)."""
    s3, sqs = emulator_clients
    movie = http.post(f"{gateway}/api/movies", json={"title": "with a poster"}).json()
    answer = http.post(f"{gateway}/api/movies/{movie['id']}/poster", json={"content_type": "image/jpeg"})
    assert answer.status_code == 201, answer.text
    upload = answer.json()
    stored = requests.post(
        upload["url"], data=upload["fields"], files={posters.FILE_FIELD: ("p.jpg", b"\xff\xd8\xff" + b"0" * 99)},
        timeout=10,
    )
    assert stored.status_code == 204
    assert s3.head_object(Bucket=UPLOAD_BUCKET, Key=upload["key"])["ContentType"] == "image/jpeg"
    message = published(movie["id"], upload["upload_id"])
    queue_url = sqs.get_queue_url(QueueName=posters.RESULTS.name)["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(message))
    # The consumer may be backing off (up to 30 s) if it started before the queue existed.
    assert wait_until(
        lambda: http.get(f"{gateway}/api/movies/{movie['id']}").json()["poster"] == message["poster"], timeout=60
    )
