"""Filters ``resize`` and ``publish`` (functions/posters/resize.py, publish.py) against a moto server."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from contract import posters as C
from contract import web
from functions.posters import common, publish, resize
from tests.functions.conftest import UPLOADS, WEB, body_event
from tests.functions.poster_samples import image_bytes

MOVIE, UPLOAD = 7, "1767225600000abcdef0123456789"
VALIDATED_KEY = f"validated/{MOVIE}/{UPLOAD}"
RESIZED_KEYS = {size: f"resized/{MOVIE}/{UPLOAD}/{size}.webp" for size in C.SIZES}
VALIDATED = {"movie_id": MOVIE, "upload_id": UPLOAD, "bucket": UPLOADS, "key": VALIDATED_KEY}
RESIZED = {"movie_id": MOVIE, "upload_id": UPLOAD, "bucket": UPLOADS, "keys": RESIZED_KEYS}


def validated(pipeline, width: int, height: int) -> None:
    """A validated PNG of that size, where validate writes it."""
    pipeline.s3.put_object(Bucket=UPLOADS, Key=VALIDATED_KEY, Body=image_bytes("PNG", width, height))


def sizes_of(pipeline) -> dict[str, tuple[str, tuple[int, int]]]:
    """Format and dimensions of each resized object."""
    found = {}
    for size, key in RESIZED_KEYS.items():
        with Image.open(io.BytesIO(pipeline.read(UPLOADS, key))) as image:
            found[size] = (image.format, image.size)
    return found


@pytest.fixture
def resizing(pipeline, monkeypatch):
    monkeypatch.setenv(common.NEXT_QUEUE_URL, pipeline.queue(C.RESIZED))
    return pipeline


def test_resize_fits_each_size_into_its_box_keeping_the_aspect(resizing):
    """A 1200 x 600 image becomes a 160 x 80 thumbnail and a 600 x 300 display image, both WebP, and the
    message on RESIZED names both keys."""
    validated(resizing, 1200, 600)
    assert resize.handler(body_event(VALIDATED), None) == {"batchItemFailures": []}
    assert sizes_of(resizing) == {"thumbnail": ("WEBP", (160, 80)), "display": ("WEBP", (600, 300))}
    assert resizing.s3.head_object(Bucket=UPLOADS, Key=RESIZED_KEYS["display"])["ContentType"] == "image/webp"
    assert resizing.bodies(C.RESIZED) == [RESIZED]


def test_resize_never_enlarges(resizing):
    """A 100 x 150 image stays 100 x 150 in both sizes."""
    validated(resizing, 100, 150)
    resize.handler(body_event(VALIDATED), None)
    assert sizes_of(resizing) == {"thumbnail": ("WEBP", (100, 150)), "display": ("WEBP", (100, 150))}


def test_resize_keeps_transparency(resizing):
    """A validated PNG with an alpha channel gives WebPs with alpha (a poster's transparent corners stay so)."""
    resizing.s3.put_object(Bucket=UPLOADS, Key=VALIDATED_KEY, Body=image_bytes("PNG", 300, 450, mode="RGBA"))
    resize.handler(body_event(VALIDATED), None)
    with Image.open(io.BytesIO(resizing.read(UPLOADS, RESIZED_KEYS["thumbnail"]))) as image:
        assert image.mode == "RGBA"


def test_resize_duplicate_message_rewrites_the_same_objects(resizing):
    """The same message twice: the same two objects, and the same RESIZED message sent twice."""
    validated(resizing, 800, 1200)
    resize.handler(body_event(VALIDATED), None)
    resize.handler(body_event(VALIDATED), None)
    assert sorted(resizing.keys(UPLOADS, C.RESIZED_PREFIX)) == sorted(RESIZED_KEYS.values())
    assert resizing.bodies(C.RESIZED) == [RESIZED, RESIZED]


def test_resize_fails_the_record_when_the_next_queue_is_unreachable(resizing, monkeypatch):
    """SQS refusing the send lists the record in batchItemFailures (retried, then the dead-letter queue)."""
    monkeypatch.setenv(common.NEXT_QUEUE_URL, resizing.queue(C.RESIZED) + "-missing")
    validated(resizing, 300, 450)
    assert resize.handler(body_event(VALIDATED, "m-9"), None) == {"batchItemFailures": [{"itemIdentifier": "m-9"}]}


def test_resize_fails_a_message_for_a_missing_object(resizing):
    """A message whose validated object does not exist fails (to the DLQ after retries), nothing is sent."""
    assert resize.handler(body_event(VALIDATED, "m-2"), None) == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    assert resizing.bodies(C.RESIZED) == []


@pytest.mark.parametrize("body", ["not json", {"movie_id": "7", "upload_id": UPLOAD, "bucket": UPLOADS, "key": "k"},
                                  {**VALIDATED, "upload_id": "../../etc"}, {**VALIDATED, "key": "incoming/7/x"}])
def test_resize_fails_malformed_messages(resizing, body):
    """Not JSON, a string movie id, a path in the upload id, a key outside validated/: failed, so they end
    up in the dead-letter queue; nothing is read or written."""
    assert resize.handler(body_event(body, "bad"), None) == {"batchItemFailures": [{"itemIdentifier": "bad"}]}
    assert resizing.keys(UPLOADS, C.RESIZED_PREFIX) == []


def resized(pipeline) -> None:
    """The two WebPs where resize writes them."""
    for size, key in RESIZED_KEYS.items():
        width, height = C.SIZES[size]
        pipeline.s3.put_object(Bucket=UPLOADS, Key=key, Body=image_bytes("WEBP", width, height),
                               ContentType="image/webp")


def test_publish_copies_to_the_web_bucket_and_reports_published(pipeline):
    """Every size lands under posters/ in the web bucket, as image/webp cached for a year (immutable), and
    poster.published on RESULTS carries their paths on the web origin."""
    resized(pipeline)
    assert publish.handler(body_event(RESIZED), None) == {"batchItemFailures": []}
    for size in C.SIZES:
        key = f"posters/{MOVIE}/{UPLOAD}/{size}.webp"
        head = pipeline.s3.head_object(Bucket=WEB, Key=key)
        assert (head["ContentType"], head["CacheControl"]) == ("image/webp", web.IMMUTABLE)
        assert pipeline.read(WEB, key) == pipeline.read(UPLOADS, RESIZED_KEYS[size])
    assert pipeline.bodies(C.RESULTS) == [{
        "type": C.POSTER_PUBLISHED, "movie_id": MOVIE, "upload_id": UPLOAD,
        "poster": {size: f"/posters/{MOVIE}/{UPLOAD}/{size}.webp" for size in C.SIZES},
    }]


def test_publish_duplicate_message_gives_the_same_objects_and_result(pipeline):
    """The same message twice: still exactly the two published objects, and the same result twice
    (inventory applies it once)."""
    resized(pipeline)
    publish.handler(body_event(RESIZED), None)
    publish.handler(body_event(RESIZED), None)
    assert sorted(pipeline.keys(WEB)) == sorted(f"posters/{MOVIE}/{UPLOAD}/{s}.webp" for s in C.SIZES)
    messages = pipeline.receive(C.RESULTS)
    assert len(messages) == 2 and messages[0]["Body"] == messages[1]["Body"]


def test_publish_fails_the_record_when_the_web_bucket_is_missing(pipeline, monkeypatch):
    """A web bucket that does not exist fails the record and reports nothing."""
    monkeypatch.setenv(common.WEB_BUCKET, "no-such-bucket")
    resized(pipeline)
    assert publish.handler(body_event(RESIZED, "p-1"), None) == {"batchItemFailures": [{"itemIdentifier": "p-1"}]}
    assert pipeline.bodies(C.RESULTS) == []


def test_publish_refuses_keys_outside_the_uploads_resized_sizes(pipeline):
    """A message naming other keys (another movie's, another prefix) is failed, nothing copied."""
    body = {**RESIZED, "keys": {"thumbnail": f"incoming/{MOVIE}/{UPLOAD}", "display": RESIZED_KEYS["display"]}}
    assert publish.handler(body_event(body, "p-2"), None) == {"batchItemFailures": [{"itemIdentifier": "p-2"}]}
    assert pipeline.keys(WEB) == []
