"""Filter ``validate`` (functions/posters/validate.py) against a moto server: S3 events in, clean copies or
``poster.rejected`` out."""

from __future__ import annotations

import io
import json
import resource

import pytest
from PIL import Image

from contract import posters as C
from functions.posters import common, validate
from tests.functions.conftest import UPLOADS, lambda_event
from tests.functions.poster_samples import (
    header_only_png,
    image_bytes,
    jpeg_with_metadata,
    png_with_text,
    truncated,
)

MOVIE, UPLOAD = 7, "1767225600000abcdef0123456789"
VALIDATED_KEY = f"validated/{MOVIE}/{UPLOAD}"


@pytest.fixture
def pipeline(pipeline, monkeypatch):
    """The emulator's pipes, validate's NEXT_QUEUE_URL being VALIDATED."""
    monkeypatch.setenv(common.NEXT_QUEUE_URL, pipeline.queue(C.VALIDATED))
    return pipeline


def run(pipeline, data: bytes, content_type: str = "image/png") -> dict:
    """Upload ``data``, hand S3's notification to the handler as Lambda would; its answer."""
    pipeline.upload(data, content_type, MOVIE, UPLOAD)
    messages = pipeline.receive(C.UPLOADED)
    assert len(messages) == 1, messages
    return validate.handler(lambda_event(messages), None)


def rejection(pipeline) -> str:
    """The one reason on RESULTS, after checking nothing went on to resize."""
    assert pipeline.bodies(C.VALIDATED) == []
    assert pipeline.keys(UPLOADS, C.VALIDATED_PREFIX) == []
    results = pipeline.bodies(C.RESULTS)
    assert [(r["type"], r["movie_id"], r["upload_id"]) for r in results] == [(C.POSTER_REJECTED, MOVIE, UPLOAD)]
    return results[0]["reason"]


@pytest.mark.parametrize(("fmt", "content_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg"),
                                                    ("WEBP", "image/webp")])
def test_good_image_is_copied_to_validated_and_passed_on(pipeline, fmt, content_type):
    """A good PNG, JPEG or WebP: re-encoded in its own format to validated/, and its message on VALIDATED."""
    assert run(pipeline, image_bytes(fmt, 300, 450), content_type) == {"batchItemFailures": []}
    stored = pipeline.s3.get_object(Bucket=UPLOADS, Key=VALIDATED_KEY)
    assert stored["ContentType"] == content_type
    with Image.open(io.BytesIO(stored["Body"].read())) as image:
        assert (image.format, image.size) == (fmt, (300, 450))
    assert pipeline.bodies(C.VALIDATED) == [{"movie_id": MOVIE, "upload_id": UPLOAD, "bucket": UPLOADS,
                                             "key": VALIDATED_KEY}]
    assert pipeline.bodies(C.RESULTS) == []


def test_jpeg_declared_as_png_is_rejected(pipeline):
    """Magic bytes decide: a JPEG sent as image/png is refused, and the reason says what it is."""
    run(pipeline, image_bytes("JPEG"), "image/png")
    assert rejection(pipeline) == "the file is not a PNG image (it looks like a JPEG image)"


def test_text_declared_as_image_is_rejected(pipeline):
    """A text file with an image content type is refused as not an image."""
    run(pipeline, b"hello, this is not a poster\n" * 10, "image/jpeg")
    assert rejection(pipeline) == "the file is not a JPEG image (it is not an image)"


def test_decompression_bomb_is_rejected_without_decoding(pipeline):
    """A small PNG declaring 20000 x 20000 pixels is refused from its header: no crash, and no 1.2 GB of
    pixels allocated (the process's peak memory grows by far less)."""
    bomb = header_only_png(20_000, 20_000)
    assert len(bomb) < 10_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert run(pipeline, bomb) == {"batchItemFailures": []}
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 200
    assert rejection(pipeline).startswith("the image is too large")


def test_too_many_pixels_within_the_side_limit_is_rejected(pipeline):
    """7000 x 6000 has no side above 8000 but 42 million pixels: refused before decoding."""
    run(pipeline, header_only_png(7000, 6000))
    assert rejection(pipeline) == (
        "the image is too large: 7000 x 6000 pixels (at most 8000 per side and 40 million pixels in all)"
    )


def test_huge_side_is_rejected(pipeline):
    """A real image wider than MAX_SIDE is refused with its dimensions."""
    run(pipeline, image_bytes("PNG", C.MAX_SIDE + 1000, 64))
    assert rejection(pipeline).startswith(f"the image is too large: {C.MAX_SIDE + 1000} x 64 pixels")


def test_too_small_image_is_rejected(pipeline):
    """A 32 x 32 image is refused: posters are at least MIN_SIDE on each side."""
    run(pipeline, image_bytes("PNG", 32, 32))
    assert rejection(pipeline) == "the image is too small: 32 x 32 pixels (at least 64 per side)"


def test_truncated_png_is_rejected(pipeline):
    """An upload cut in half (valid header, missing pixel data) is refused as damaged, not a crash."""
    run(pipeline, truncated(image_bytes("PNG", 300, 450)))
    assert rejection(pipeline) == "the file is damaged or incomplete: not a readable PNG image"


def test_oversize_upload_is_rejected(pipeline):
    """More than MAX_UPLOAD_BYTES (S3's policy stops it on AWS; the emulator lets it through) is refused."""
    run(pipeline, image_bytes("PNG", 64, 64) + b"\x00" * C.MAX_UPLOAD_BYTES)
    assert rejection(pipeline).startswith("the file is larger than 5 MiB")


def test_other_content_type_is_rejected(pipeline):
    """A content type outside CONTENT_TYPES (image/gif) is refused, naming the accepted ones."""
    run(pipeline, image_bytes("GIF"), "image/gif")
    assert rejection(pipeline) == "content type 'image/gif' is not accepted (use image/png, image/jpeg, image/webp)"


def test_exif_and_icc_are_stripped_from_jpeg(pipeline):
    """A JPEG with EXIF (camera, GPS) and an ICC profile comes out with neither."""
    original = jpeg_with_metadata()
    with Image.open(io.BytesIO(original)) as image:
        assert image.getexif().get_ifd(0x8825) and "icc_profile" in image.info  # the sample really has them
    run(pipeline, original, "image/jpeg")
    with Image.open(io.BytesIO(pipeline.read(UPLOADS, VALIDATED_KEY))) as image:
        assert dict(image.getexif()) == {}
        assert "exif" not in image.info and "icc_profile" not in image.info


def test_exif_orientation_is_applied_to_the_pixels(pipeline):
    """A 300 x 450 JPEG whose EXIF says "rotate 90°" comes out as 450 x 300 pixels, without the tag."""
    run(pipeline, jpeg_with_metadata(300, 450, orientation=6), "image/jpeg")
    with Image.open(io.BytesIO(pipeline.read(UPLOADS, VALIDATED_KEY))) as image:
        assert image.size == (450, 300)
        assert 0x0112 not in image.getexif()


def test_png_text_chunks_are_stripped(pipeline):
    """PNG text chunks (author, comment) and the ICC profile do not survive validation."""
    run(pipeline, png_with_text())
    with Image.open(io.BytesIO(pipeline.read(UPLOADS, VALIDATED_KEY))) as image:
        assert image.text == {} and "icc_profile" not in image.info


def test_s3_test_event_is_ignored(pipeline):
    """The s3:TestEvent S3 sends when the notification is set up is consumed and changes nothing."""
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": UPLOADS})
    event = {"Records": [{"messageId": "t-1", "receiptHandle": "r", "body": body, "attributes": {}}]}
    assert validate.handler(event, None) == {"batchItemFailures": []}
    assert pipeline.bodies(C.VALIDATED) == [] and pipeline.bodies(C.RESULTS) == []


def test_duplicate_event_rewrites_the_same_output_and_resends_the_same_message(pipeline):
    """The same S3 event twice: still one validated object (same bytes), and two identical messages on
    VALIDATED (the next filter is idempotent; skipping the send could lose the poster)."""
    pipeline.upload(image_bytes("PNG"), "image/png", MOVIE, UPLOAD)
    event = lambda_event(pipeline.receive(C.UPLOADED))
    validate.handler(event, None)
    first = pipeline.read(UPLOADS, VALIDATED_KEY)
    validate.handler(event, None)
    assert pipeline.keys(UPLOADS, C.VALIDATED_PREFIX) == [VALIDATED_KEY]
    assert pipeline.read(UPLOADS, VALIDATED_KEY) == first
    messages = pipeline.receive(C.VALIDATED)
    assert len(messages) == 2 and messages[0]["Body"] == messages[1]["Body"]


def test_unreachable_next_queue_fails_the_record(pipeline, monkeypatch):
    """SQS refusing the send (a queue that does not exist) lists the record in batchItemFailures: it is
    retried, and after MAX_RECEIVE_COUNT receives SQS moves it to the dead-letter queue."""
    monkeypatch.setenv(common.NEXT_QUEUE_URL, pipeline.queue(C.VALIDATED) + "-missing")
    pipeline.upload(image_bytes("PNG"), "image/png", MOVIE, UPLOAD)
    event = lambda_event(pipeline.receive(C.UPLOADED))
    failed = [{"itemIdentifier": event["Records"][0]["messageId"]}]
    assert validate.handler(event, None) == {"batchItemFailures": failed}


def test_missing_bucket_fails_the_record(pipeline):
    """An event whose object S3 cannot serve because the bucket is gone is a failure, not a rejection."""
    pipeline.upload(image_bytes("PNG"), "image/png", MOVIE, UPLOAD)
    event = lambda_event(pipeline.receive(C.UPLOADED))
    pipeline.s3.delete_object(Bucket=UPLOADS, Key=f"incoming/{MOVIE}/{UPLOAD}")
    pipeline.s3.delete_bucket(Bucket=UPLOADS)
    assert validate.handler(event, None)["batchItemFailures"] == [{"itemIdentifier": event["Records"][0]["messageId"]}]
    assert pipeline.bodies(C.RESULTS) == []


def test_one_failing_record_does_not_fail_the_others(pipeline):
    """A batch of a good event and a malformed message: only the malformed one is listed as failed."""
    pipeline.upload(image_bytes("PNG"), "image/png", MOVIE, UPLOAD)
    event = lambda_event(pipeline.receive(C.UPLOADED))
    event["Records"].append({"messageId": "broken", "receiptHandle": "r", "body": "{not json", "attributes": {}})
    assert validate.handler(event, None) == {"batchItemFailures": [{"itemIdentifier": "broken"}]}
    assert len(pipeline.bodies(C.VALIDATED)) == 1


def test_object_outside_incoming_is_ignored(pipeline):
    """An event for a key inventory never hands out (not incoming/<movie>/<upload>) is dropped, logged."""
    pipeline.s3.put_object(Bucket=UPLOADS, Key="incoming/not-a-movie/x", Body=image_bytes("PNG"))
    assert validate.handler(lambda_event(pipeline.receive(C.UPLOADED)), None) == {"batchItemFailures": []}
    assert pipeline.bodies(C.VALIDATED) == [] and pipeline.bodies(C.RESULTS) == []
