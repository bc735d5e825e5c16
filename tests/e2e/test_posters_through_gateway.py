"""Posters through the gateway on the full local system: the permission, the presigned upload to the emulator's
S3, and the whole pipeline (the local runner's filters, then inventory's results consumer) setting the poster."""

from __future__ import annotations

import io
import secrets
import time

import pytest
import requests
from PIL import Image

from contract import posters
from local_system.poster_resources import UPLOAD_BUCKET, WEB_BUCKET
from tests.integration.posters_support import client
from tests.waiting import poll

pytestmark = pytest.mark.e2e


@pytest.fixture
def emulator_clients(local_system):
    """(s3, sqs) of the test emulator (the local system provisioned its buckets and queues)."""
    return client("s3", local_system.identity.url), client("sqs", local_system.identity.url)


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


def _jpeg() -> bytes:
    """A real 300 x 450 JPEG, as a browser would upload it."""
    buffer = io.BytesIO()
    Image.new("RGB", (300, 450), (200, 40, 40)).save(buffer, "JPEG")
    return buffer.getvalue()


def _request_and_upload(gateway, http, movie_id: int, body: bytes) -> dict:
    """POST .../poster through the gateway, then the presigned form (fields, then the file last) to S3."""
    answer = http.post(f"{gateway}/api/movies/{movie_id}/poster", json={"content_type": "image/jpeg"})
    assert answer.status_code == 201, answer.text
    upload = answer.json()
    stored = requests.post(
        upload["url"], data=upload["fields"], files={posters.FILE_FIELD: ("p.jpg", body)}, timeout=10
    )
    assert stored.status_code == 204, stored.text
    return upload


def test_a_poster_uploaded_with_the_presigned_form_is_published_by_the_pipeline(gateway, http, emulator_clients):
    """The curl path of issue 14: presigned POST through the gateway, the file straight to S3, then validate ->
    resize -> publish (the local runner) and inventory's consumer set the movie's poster; the published
    thumbnail is a WebP in the web bucket. Prints how long upload -> published took (not asserted)."""
    s3, _sqs = emulator_clients
    movie = http.post(f"{gateway}/api/movies", json={"title": "with a poster"}).json()
    upload = _request_and_upload(gateway, http, movie["id"], _jpeg())
    assert s3.head_object(Bucket=UPLOAD_BUCKET, Key=upload["key"])["ContentType"] == "image/jpeg"
    began = time.monotonic()
    read = lambda: http.get(f"{gateway}/api/movies/{movie['id']}").json()  # noqa: E731
    assert poll(lambda: read()["poster_status"]["state"] == posters.PUBLISHED, timeout=60), read()
    print(f"\nposter upload -> published: {time.monotonic() - began:.2f} s")
    poster = read()["poster"]
    assert set(poster) == set(posters.SIZES)
    thumbnail = s3.get_object(Bucket=WEB_BUCKET, Key=poster["thumbnail"].lstrip("/"))
    assert thumbnail["ContentType"] == "image/webp"
    assert Image.open(io.BytesIO(thumbnail["Body"].read())).size == posters.SIZES["thumbnail"]


def test_a_file_that_is_not_the_declared_image_is_rejected_and_the_movie_keeps_no_poster(
    gateway, http, emulator_clients
):
    """Bytes that start like a JPEG but are not one: validate rejects them; the movie shows the reason and no
    poster."""
    movie = http.post(f"{gateway}/api/movies", json={"title": "with a broken poster"}).json()
    upload = _request_and_upload(gateway, http, movie["id"], b"\xff\xd8\xff" + b"0" * 99)
    read = lambda: http.get(f"{gateway}/api/movies/{movie['id']}").json()  # noqa: E731
    assert poll(lambda: read()["poster_status"]["state"] == posters.REJECTED, timeout=60), read()
    status = read()["poster_status"]
    assert status["upload_id"] == upload["upload_id"] and status["reason"]
    assert read()["poster"] is None
