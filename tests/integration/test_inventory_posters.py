"""Posters in inventory, in-process, against the real test PostgreSQL and the emulator's S3 and SQS (moto server):
the presigned upload (valet key) and the consumer of the pipeline's results."""

from __future__ import annotations

import json
import re

import pytest
import requests

from common.config import DatabaseSettings
from common.db import ConnectionPool, Schema
from contract import posters
from inventory import aws, create_app
from inventory import metrics as inventory_metrics
from inventory.db import MIGRATIONS, STORE, MovieStore
from inventory.poster_results import PosterResultsConsumer
from local_system.poster_resources import UPLOAD_BUCKET
from tests.integration.posters_support import (
    client,
    messages_in,
    own_queue,
    published,
    rejected,
)
from tests.waiting import poll

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # the bytes do not matter to S3; the pipeline checks them


@pytest.fixture
def emulator(test_infrastructure) -> str:
    """URL of the test profile's emulator (started with the infrastructure)."""
    return test_infrastructure.identity.url


@pytest.fixture
def s3(emulator):
    """The test's own S3 client (the local system provisioned the uploads bucket)."""
    return client("s3", emulator)


@pytest.fixture
def sqs(emulator):
    """The test's own SQS client (the local system provisioned the results queue and its dead-letter queue)."""
    return client("sqs", emulator)


@pytest.fixture
def settings(inventory_settings, postgres, monkeypatch) -> DatabaseSettings:
    """The environment the local system gives inventory (database, emulator, posters on), without the consumer
    (the tests run their own), and inventory's boto3 clients built afresh from it."""
    for key, value in postgres.system.service_env("inventory").items():
        if key.startswith("POSTER_"):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("POSTER_RESULTS_QUEUE_URL", raising=False)
    monkeypatch.setattr(aws, "_clients", {})
    return inventory_settings


@pytest.fixture
def app_client(settings, postgres, s3):
    """A test client of a fresh inventory app on an empty movies table, posters on."""
    app = create_app(settings)
    STORE.of(app).check()  # migrated (a fresh test database has no table yet)
    postgres.truncate("movies_db", "movies")
    return app.test_client()


@pytest.fixture
def store(settings, app_client):
    """A MovieStore on the same database (what the consumer is given in ``create_app``)."""
    pool = ConnectionPool(settings, "poster-results-test")
    yield MovieStore(pool, Schema(pool, "inventory", MIGRATIONS))
    pool.close()


def _movie(app_client, title: str = "Stalker") -> int:
    return app_client.post("/api/movies", json={"title": title}).get_json()["id"]


def _upload(app_client, movie_id: int, content_type: str = "image/png") -> dict:
    response = app_client.post(f"/api/movies/{movie_id}/poster", json={"content_type": content_type})
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def _send(sqs, queue_url: str, body) -> None:
    sqs.send_message(QueueUrl=queue_url, MessageBody=body if isinstance(body, str) else json.dumps(body))


def _drain(consumer: PosterResultsConsumer, sqs, queue_url: str) -> None:
    """Let the consumer receive until the queue holds nothing more it would delete."""
    for _ in range(5):
        if consumer.poll_once() == 0 and messages_in(sqs, queue_url) == 0:
            return


# -- the presigned upload -----------------------------------------------------------------------------------
def test_presigned_post_has_the_documented_shape_and_marks_the_upload_pending(app_client, emulator):
    """201 with url, fields, upload_id, key and expires_in: the key is the server's, the url the emulator's
    bucket (path-style), the content type fixed; the movie's poster_status is pending for that upload."""
    movie_id = _movie(app_client)
    answer = _upload(app_client, movie_id)
    assert set(answer) == {"url", "fields", "upload_id", "key", "expires_in"}
    assert re.fullmatch(r"[0-9]{13}[0-9a-f]{16}", answer["upload_id"])
    assert answer["key"] == posters.incoming_key(movie_id, answer["upload_id"])
    assert answer["url"] == f"{emulator}/{UPLOAD_BUCKET}"
    assert answer["expires_in"] == posters.UPLOAD_EXPIRES_SECONDS
    assert answer["fields"]["key"] == answer["key"]
    assert answer["fields"]["Content-Type"] == "image/png"
    assert {"policy", "x-amz-signature", "x-amz-credential"} <= set(answer["fields"])
    movie = app_client.get(f"/api/movies/{movie_id}").get_json()
    assert movie["poster"] is None
    assert movie["poster_status"] == {"upload_id": answer["upload_id"], "state": "pending", "reason": None}


def test_policy_limits_key_type_size_and_lifetime(app_client):
    """The signed policy names the exact key, the exact content type, 1..MAX_UPLOAD_BYTES and expires in
    UPLOAD_EXPIRES_SECONDS (S3 enforces it; the emulator does not, so it is read here)."""
    import base64
    from datetime import UTC, datetime

    answer = _upload(app_client, _movie(app_client), "image/webp")
    policy = json.loads(base64.b64decode(answer["fields"]["policy"]))
    conditions = policy["conditions"]
    assert {"key": answer["key"]} in conditions
    assert {"Content-Type": "image/webp"} in conditions
    assert ["content-length-range", 1, posters.MAX_UPLOAD_BYTES] in conditions
    expires = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    remaining = (expires - datetime.now(UTC)).total_seconds()
    assert posters.UPLOAD_EXPIRES_SECONDS - 30 < remaining <= posters.UPLOAD_EXPIRES_SECONDS


def test_the_form_uploads_the_file_under_the_key(app_client, s3):
    """A multipart POST of the fields and then the file to the url answers 204 and stores the bytes under the
    key, with the content type asked for: the browser never needs the API for the bytes."""
    answer = _upload(app_client, _movie(app_client))
    response = requests.post(
        answer["url"], data=answer["fields"], files={posters.FILE_FIELD: ("poster.png", PNG, "image/png")}, timeout=10
    )
    assert response.status_code == 204, response.text
    stored = s3.get_object(Bucket=UPLOAD_BUCKET, Key=answer["key"])
    assert stored["Body"].read() == PNG
    assert stored["ContentType"] == "image/png"


@pytest.mark.parametrize(
    "body",
    [{"content_type": "image/gif"}, {}, {"content_type": ["image/png"]}, {"content_type": None},
     {"content_type": "image/png", "key": "incoming/1/mine"}],
)
def test_a_missing_or_unsupported_content_type_is_400_listing_the_allowed_ones(app_client, body):
    """400 JSON naming the allowed types; the movie's poster state is untouched."""
    movie_id = _movie(app_client)
    response = app_client.post(f"/api/movies/{movie_id}/poster", json=body)
    assert response.status_code == 400
    answer = response.get_json()
    assert answer["allowed_content_types"] == list(posters.CONTENT_TYPES)
    assert "content_type" in answer["error"]
    assert app_client.get(f"/api/movies/{movie_id}").get_json()["poster_status"] is None


@pytest.mark.parametrize("body", [b"{", b"", b"[]", b"\xff"])
def test_a_body_that_is_no_json_object_is_400(app_client, body):
    """Bad JSON, an empty body or a JSON array: 400 JSON, never a 500."""
    movie_id = _movie(app_client)
    response = app_client.post(f"/api/movies/{movie_id}/poster", data=body, content_type="application/json")
    assert response.status_code == 400
    assert "error" in response.get_json()


@pytest.mark.parametrize("movie_id", ["424242", "99999999999999999999", "abc"])
def test_unknown_movie_is_404(app_client, movie_id):
    """No such movie (or an id out of range, or no integer): 404 JSON, and no upload is signed for it."""
    response = app_client.post(f"/api/movies/{movie_id}/poster", json={"content_type": "image/png"})
    assert response.status_code == 404
    assert "error" in response.get_json()


def test_posters_off_is_503_json(settings, postgres, monkeypatch):
    """POSTER_UPLOAD_BUCKET empty: the endpoint answers 503 with a JSON error; the movie is not marked pending."""
    monkeypatch.delenv("POSTER_UPLOAD_BUCKET")
    app_client = create_app(settings).test_client()
    movie_id = _movie(app_client)
    response = app_client.post(f"/api/movies/{movie_id}/poster", json={"content_type": "image/png"})
    assert response.status_code == 503
    assert "not enabled" in response.get_json()["error"]
    assert app_client.get(f"/api/movies/{movie_id}").get_json()["poster_status"] is None


def test_movie_answers_keep_their_fields_and_gain_the_poster_ones(app_client):
    """Create, read, list and update answer the same fields as before plus poster and poster_status (null), and
    stock and price (null: not for sale, issue 15)."""
    created = app_client.post("/api/movies", json={"title": "Solaris", "description": "1972"}).get_json()
    assert created == {"id": created["id"], "title": "Solaris", "description": "1972", "poster": None,
                       "poster_status": None, "stock": None, "price": None}
    assert app_client.get("/api/movies").get_json() == [created]
    updated = app_client.put(f"/api/movies/{created['id']}", json={"description": None}).get_json()
    assert updated == {**created, "description": None}


def test_poster_fields_cannot_be_written_through_the_movie_api(app_client):
    """poster and poster_status belong to the pipeline: POST and PUT refuse them as unknown fields."""
    movie_id = _movie(app_client)
    poster = {"thumbnail": "/posters/x.webp", "display": "/posters/y.webp"}
    assert app_client.post("/api/movies", json={"title": "x", "poster": poster}).status_code == 400
    assert app_client.put(f"/api/movies/{movie_id}", json={"poster": poster}).status_code == 400


# -- the results consumer -----------------------------------------------------------------------------------
@pytest.fixture
def results(sqs, store):
    """(consumer, queue URL, dead-letter queue URL): a consumer of a results queue of this test's own."""
    queue_url, dlq_url = own_queue(sqs)
    consumer = PosterResultsConsumer(store, queue_url, wait_seconds=1)
    yield consumer, queue_url, dlq_url
    consumer.stop()
    sqs.delete_queue(QueueUrl=queue_url)
    sqs.delete_queue(QueueUrl=dlq_url)


def test_published_sets_the_poster_and_the_state(app_client, sqs, results):
    """poster.published for the pending upload: the movie's poster is the message's URLs, its state published,
    and the message is deleted."""
    consumer, queue_url, _ = results
    movie_id = _movie(app_client)
    upload_id = _upload(app_client, movie_id)["upload_id"]
    message = published(movie_id, upload_id)
    _send(sqs, queue_url, message)
    _drain(consumer, sqs, queue_url)
    movie = app_client.get(f"/api/movies/{movie_id}").get_json()
    assert movie["poster"] == message["poster"]
    assert movie["poster_status"] == {"upload_id": upload_id, "state": "published", "reason": None}
    assert messages_in(sqs, queue_url) == 0


def test_rejected_sets_the_state_and_reason_and_keeps_the_poster(app_client, sqs, results):
    """poster.rejected for a newer upload: state rejected with the reason; the published poster stays."""
    consumer, queue_url, _ = results
    movie_id = _movie(app_client)
    first = _upload(app_client, movie_id)["upload_id"]
    _send(sqs, queue_url, published(movie_id, first))
    _drain(consumer, sqs, queue_url)
    second = _upload(app_client, movie_id)["upload_id"]
    _send(sqs, queue_url, rejected(movie_id, second, "image is 10 x 10 pixels, at least 64 needed"))
    _drain(consumer, sqs, queue_url)
    movie = app_client.get(f"/api/movies/{movie_id}").get_json()
    assert movie["poster"] == published(movie_id, first)["poster"]
    assert movie["poster_status"] == {
        "upload_id": second, "state": "rejected", "reason": "image is 10 x 10 pixels, at least 64 needed"
    }


def test_a_result_for_an_older_upload_changes_nothing(app_client, sqs, results):
    """Two uploads requested; the older one's result arrives after the newer was requested: the movie still
    waits for the newer one (no poster, pending), and the message is deleted."""
    consumer, queue_url, _ = results
    movie_id = _movie(app_client)
    older = _upload(app_client, movie_id)["upload_id"]
    newer = _upload(app_client, movie_id)["upload_id"]
    assert older < newer
    _send(sqs, queue_url, published(movie_id, older))
    _drain(consumer, sqs, queue_url)
    movie = app_client.get(f"/api/movies/{movie_id}").get_json()
    assert movie["poster"] is None
    assert movie["poster_status"] == {"upload_id": newer, "state": "pending", "reason": None}
    assert messages_in(sqs, queue_url) == 0


def test_a_replayed_or_conflicting_result_changes_nothing(app_client, sqs, results):
    """Once an upload's result is applied, the same message again, or another result for the same upload,
    leaves the movie exactly as it was (SQS delivers at least once)."""
    consumer, queue_url, _ = results
    movie_id = _movie(app_client)
    upload_id = _upload(app_client, movie_id)["upload_id"]
    _send(sqs, queue_url, published(movie_id, upload_id))
    _drain(consumer, sqs, queue_url)
    before = app_client.get(f"/api/movies/{movie_id}").get_json()
    _send(sqs, queue_url, published(movie_id, upload_id))
    _send(sqs, queue_url, rejected(movie_id, upload_id))
    _drain(consumer, sqs, queue_url)
    assert app_client.get(f"/api/movies/{movie_id}").get_json() == before
    assert messages_in(sqs, queue_url) == 0


@pytest.mark.parametrize(
    "body",
    ["not json", json.dumps({"type": "poster.deleted", "movie_id": 1, "upload_id": "1767225600000a1b2c3d4e5f60718"}),
     json.dumps({"type": "poster.published", "movie_id": "1", "upload_id": "1767225600000a1b2c3d4e5f60718"})],
)
def test_a_malformed_result_stays_and_moves_to_the_dead_letter_queue(app_client, sqs, results, body):
    """A message inventory can never apply is not deleted: after MAX_RECEIVE_COUNT receives SQS moves it, intact,
    to the dead-letter queue; the failure is counted."""
    consumer, queue_url, dlq_url = results
    failed_before = inventory_metrics.RESULTS_FAILED.labels("malformed")._value.get()
    _send(sqs, queue_url, body)

    def in_dead_letter_queue():
        consumer.poll_once()  # each receive that brings it logs and leaves it; 1 s later it is visible again
        return sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=0).get("Messages", [])

    moved = poll(in_dead_letter_queue, timeout=30, interval=0.5)
    assert [message["Body"] for message in moved] == [body]
    assert messages_in(sqs, queue_url) == 0
    failed = inventory_metrics.RESULTS_FAILED.labels("malformed")._value.get() - failed_before
    assert failed >= posters.MAX_RECEIVE_COUNT


def test_a_result_for_an_unknown_movie_is_deleted(app_client, sqs, results):
    """The movie was deleted while its poster was processed: the result is deleted (nothing to apply it to)
    and nothing else changes."""
    consumer, queue_url, dlq_url = results
    movie_id = _movie(app_client)
    upload_id = _upload(app_client, movie_id)["upload_id"]
    assert app_client.delete(f"/api/movies/{movie_id}").status_code == 200
    _send(sqs, queue_url, published(movie_id, upload_id))
    _drain(consumer, sqs, queue_url)
    assert messages_in(sqs, queue_url) == 0
    assert messages_in(sqs, dlq_url) == 0
    assert app_client.get(f"/api/movies/{movie_id}").status_code == 404


def test_the_consumer_thread_applies_results_until_stopped(app_client, sqs, results):
    """Started like gunicorn starts it (start hook), the thread applies a result on its own and stops promptly."""
    consumer, queue_url, _ = results
    movie_id = _movie(app_client)
    upload_id = _upload(app_client, movie_id)["upload_id"]
    consumer.start()
    _send(sqs, queue_url, published(movie_id, upload_id))
    state = lambda: app_client.get(f"/api/movies/{movie_id}").get_json()["poster_status"]["state"]  # noqa: E731
    assert poll(lambda: state() == "published", timeout=20)
    assert consumer.stop(timeout=5)


def test_two_consumers_compete_and_apply_every_result_once(app_client, sqs, results, store):
    """Two workers' consumers on one queue: every movie gets its poster (SQS hands each message to one; a
    second delivery would change nothing)."""
    consumer, queue_url, _ = results
    other = PosterResultsConsumer(store, queue_url, wait_seconds=1)
    movies = [_movie(app_client, f"movie {n}") for n in range(8)]
    uploads = {movie_id: _upload(app_client, movie_id)["upload_id"] for movie_id in movies}
    for movie_id, upload_id in uploads.items():
        _send(sqs, queue_url, published(movie_id, upload_id))
    consumer.start()
    other.start()
    try:
        def all_published():
            return all(
                app_client.get(f"/api/movies/{movie_id}").get_json()["poster_status"]["state"] == "published"
                for movie_id in movies
            )

        assert poll(all_published, timeout=30)
    finally:
        assert other.stop(timeout=5)
    assert poll(lambda: messages_in(sqs, queue_url) == 0, timeout=10)


def test_sqs_unreachable_never_ends_the_consumer_nor_the_api(app_client, store):
    """A queue the emulator does not have (or SQS away): the thread keeps retrying with backoff, counts the
    failures, stops on request; the movies API answers meanwhile."""
    errors_before = inventory_metrics.RECEIVE_ERRORS._value.get()
    consumer = PosterResultsConsumer(store, "http://127.0.0.1:26600/123456789012/no-such-queue", wait_seconds=1)
    consumer.start()
    try:
        assert poll(lambda: inventory_metrics.RECEIVE_ERRORS._value.get() - errors_before >= 2, timeout=20)
        assert consumer._thread is not None and consumer._thread.is_alive()
        assert app_client.get("/api/movies").status_code == 200
    finally:
        assert consumer.stop(timeout=5)
