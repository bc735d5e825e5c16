"""Inventory's poster code without servers: the result messages it accepts, the upload ids it makes, and that
its workers load no boto3 unless posters are in use."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from contract import posters
from inventory.poster_results import MalformedResult, PosterResultsConsumer, parse_result
from inventory.posters import new_upload_id

REPO = Path(__file__).resolve().parents[2]
UPLOAD = "1767225600000a1b2c3d4e5f60718"


def _published(**changes) -> str:
    message = {
        "type": posters.POSTER_PUBLISHED, "movie_id": 7, "upload_id": UPLOAD,
        "poster": {name: f"/posters/7/{UPLOAD}/{name}.webp" for name in posters.SIZES},
    }
    message.update(changes)
    return json.dumps(message)


def test_upload_ids_are_time_ordered_and_unique():
    """13 digits of milliseconds then 16 hex digits; a later id sorts after an earlier one."""
    first, second = new_upload_id(), new_upload_id()
    assert re.fullmatch(r"[0-9]{13}[0-9a-f]{16}", first)
    assert first != second
    assert first[:13] <= second[:13]


def test_a_published_and_a_rejected_result_are_parsed():
    """The two message shapes of the contract decode to the state they set."""
    result = parse_result(_published())
    assert (result.movie_id, result.upload_id, result.state) == (7, UPLOAD, posters.PUBLISHED)
    assert result.poster == {name: f"/posters/7/{UPLOAD}/{name}.webp" for name in posters.SIZES}
    rejected = parse_result(json.dumps(
        {"type": posters.POSTER_REJECTED, "movie_id": 7, "upload_id": UPLOAD, "reason": "not a PNG"}
    ))
    assert (rejected.state, rejected.reason, rejected.poster) == (posters.REJECTED, "not a PNG", None)


@pytest.mark.parametrize(
    "body",
    [
        "", "not json", "[]", "null",
        _published(type="poster.deleted"),
        _published(movie_id="7"), _published(movie_id=True), _published(movie_id=0), _published(movie_id=2**63),
        _published(upload_id="../../etc"), _published(upload_id=UPLOAD.upper()), _published(upload_id=None),
        _published(poster=None), _published(poster={"thumbnail": "/posters/a.webp"}),
        _published(poster={"thumbnail": "https://evil.example/x.webp", "display": "/posters/d.webp"}),
        _published(poster={"thumbnail": "/posters/../secret", "display": "/posters/d.webp"}),
        _published(poster={"thumbnail": "/posters/a b.webp", "display": "/posters/d.webp"}),
        json.dumps({"type": posters.POSTER_REJECTED, "movie_id": 7, "upload_id": UPLOAD}),
        json.dumps({"type": posters.POSTER_REJECTED, "movie_id": 7, "upload_id": UPLOAD, "reason": " "}),
        json.dumps({"type": posters.POSTER_REJECTED, "movie_id": 7, "upload_id": UPLOAD, "reason": "a\x00b"}),
    ],
)
def test_malformed_results_are_refused(body):
    """Anything but a well-formed result is MalformedResult (left on the queue for the dead-letter queue)."""
    with pytest.raises(MalformedResult):
        parse_result(body)


def _imports_boto3_after_create_app(extra_env: dict[str, str]) -> bool:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTER_", "AWS_", "DATABASE_"))}
    env.update(
        DATABASE_USER="unit", RABBITMQ_USER="unit", PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "services")]),
        **extra_env,
    )
    code = "import sys, inventory; inventory.create_app(); print('boto3' in sys.modules or 'botocore' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return output.stdout.strip().splitlines()[-1] == "True"


def test_a_worker_without_posters_never_imports_boto3():
    """Posters off (the default): building the app loads no boto3, the 20+ MiB per worker it costs."""
    assert not _imports_boto3_after_create_app({})


def test_a_worker_with_posters_imports_boto3_only_when_used():
    """Posters on: still no boto3 while the app is built; the first poster request or the consumer's start
    (a start hook, run in the worker) loads it."""
    assert not _imports_boto3_after_create_app(
        {"POSTER_UPLOAD_BUCKET": "uploads", "POSTER_RESULTS_QUEUE_URL": "http://127.0.0.1:9/1/poster-results"}
    )


@pytest.mark.parametrize("seconds", [0, 21])
def test_a_long_poll_sqs_would_refuse_is_a_start_up_error(seconds):
    """POSTER_RESULTS_WAIT_SECONDS outside SQS's 1-20 fails at start with the variable's name, not at every poll."""
    with pytest.raises(ValueError, match="POSTER_RESULTS_WAIT_SECONDS must be 1 to 20"):
        PosterResultsConsumer(None, "http://127.0.0.1:1/queue", wait_seconds=seconds)
