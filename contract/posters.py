"""Movie posters: the valet-key upload and the pipes-and-filters pipeline that publishes it.

The path of one poster (docs/patterns/pipes-and-filters.md):

1. ``POST /api/movies/<id>/poster`` (movies.write): inventory answers a presigned S3 POST (the valet key) for
   ``incoming/<movie id>/<upload id>`` in the uploads bucket; the browser uploads the file straight to S3.
2. S3 announces the new object on the ``UPLOADED`` queue. Filter ``validate`` checks size, magic bytes and
   dimensions, re-encodes the pixels without metadata to ``validated/...`` and passes it on (``VALIDATED``),
   or reports ``poster.rejected`` with the reason on ``RESULTS``.
3. Filter ``resize`` writes one WebP per entry of ``SIZES`` to ``resized/...`` (``RESIZED``).
4. Filter ``publish`` copies them to ``posters/...`` in the web content bucket (served at ``/posters/*``, the
   same origin as the web front end) and reports ``poster.published`` on ``RESULTS``.
5. Inventory consumes ``RESULTS`` and sets the movie's ``poster`` (newest upload wins; replays change nothing).

Every queue has a dead-letter queue: a message that fails ``MAX_RECEIVE_COUNT`` times moves there (and raises
an alarm on AWS). Each filter reads only its input prefix and writes only its output prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- the upload (valet key) --------------------------------------------------------------------------------
#: Accepted content types and the image format their bytes must really be (checked by ``validate``).
CONTENT_TYPES: dict[str, str] = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
#: Largest upload S3 accepts (the presigned POST's content-length-range) and ``validate`` accepts.
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
#: Lifetime of a presigned POST.
UPLOAD_EXPIRES_SECONDS = 300
#: Form field that carries the file: the last field of the multipart form (S3 ignores fields after it).
FILE_FIELD = "file"

# --- what an image may be -------------------------------------------------------------------------------------
#: Largest width or height accepted, and largest pixel count (a decompression bomb is refused before decoding).
MAX_SIDE = 8000
MAX_PIXELS = 40_000_000
#: Smallest width or height accepted (a poster of 10 x 10 pixels is a mistake).
MIN_SIDE = 64

#: Published sizes: name -> (max width, max height); aspect ratio kept, never enlarged, WebP.
SIZES: dict[str, tuple[int, int]] = {"thumbnail": (160, 240), "display": (600, 900)}
PUBLISHED_FORMAT = "WEBP"
PUBLISHED_EXTENSION = "webp"

# --- where the bytes are ---------------------------------------------------------------------------------------
#: Prefixes in the uploads bucket: each filter reads one and writes the next.
INCOMING_PREFIX = "incoming/"
VALIDATED_PREFIX = "validated/"
RESIZED_PREFIX = "resized/"
#: Prefix in the web content bucket (and URL path on the web origin) of published posters.
PUBLISHED_PREFIX = "posters/"


# --- the pipes ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pipe:
    """An SQS queue between two filters, and its dead-letter queue."""

    name: str
    consumer: str
    description: str

    @property
    def dead_letter_queue(self) -> str:
        """Where a message goes after ``MAX_RECEIVE_COUNT`` failed receives."""
        return f"{self.name}-dlq"


UPLOADED = Pipe("poster-uploaded", "validate", "S3 ObjectCreated events of incoming/ (one per upload).")
VALIDATED = Pipe("poster-validated", "resize", "Uploads that passed validation, re-encoded without metadata.")
RESIZED = Pipe("poster-resized", "publish", "Uploads resized to every published size.")
RESULTS = Pipe("poster-results", "inventory", "poster.published and poster.rejected, applied to the movie.")
PIPES: tuple[Pipe, ...] = (UPLOADED, VALIDATED, RESIZED, RESULTS)
#: The filters in pipeline order, each with the pipe it reads.
FILTERS: dict[str, Pipe] = {"validate": UPLOADED, "resize": VALIDATED, "publish": RESIZED}

#: Receives of one message before SQS moves it to the dead-letter queue.
MAX_RECEIVE_COUNT = 3
#: Seconds a received message stays invisible: longer than a filter may run (the Lambda timeout is shorter).
VISIBILITY_TIMEOUT_SECONDS = 60

# --- messages on RESULTS -------------------------------------------------------------------------------------------
POSTER_PUBLISHED = "poster.published"
"""``{"type", "movie_id", "upload_id", "poster": {<size name>: "/posters/..."}}``"""
POSTER_REJECTED = "poster.rejected"
"""``{"type", "movie_id", "upload_id", "reason"}``"""

# --- poster state of a movie (inventory's ``poster_status``) -------------------------------------------------------
PENDING, PUBLISHED, REJECTED = "pending", "published", "rejected"


def incoming_key(movie_id: int, upload_id: str) -> str:
    """Key of an upload: chosen by the server, never by the browser."""
    return f"{INCOMING_PREFIX}{movie_id}/{upload_id}"


def stage_key(prefix: str, movie_id: int, upload_id: str, name: str = "") -> str:
    """Key of one stage's output: ``<prefix><movie id>/<upload id>[/<name>]`` (deterministic, so a retried
    filter overwrites its own output instead of adding another)."""
    return f"{prefix}{movie_id}/{upload_id}" + (f"/{name}" if name else "")


def parse_key(key: str) -> tuple[str, int, str]:
    """``(prefix, movie id, upload id)`` of a pipeline key; ValueError when it is not one."""
    for prefix in (INCOMING_PREFIX, VALIDATED_PREFIX, RESIZED_PREFIX, PUBLISHED_PREFIX):
        if key.startswith(prefix):
            parts = key[len(prefix) :].split("/")
            if len(parts) >= 2 and parts[0].isdigit() and parts[1]:
                return prefix, int(parts[0]), parts[1]
    raise ValueError(f"not a poster pipeline key: {key!r}")
