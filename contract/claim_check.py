"""The claim check: a message too large to travel through the broker travels as a reference to S3.

Any event body larger than ``MAX_INLINE_BYTES`` is stored once in S3 under ``claim-checks/<sha256>`` and the
message carries only ``{"claim_check": {"bucket", "key", "sha256", "size"}}`` with the header ``HEADER`` set to
``HEADER_VALUE``; the consumer fetches the object and checks its size and sha256 before it uses a byte
(``services/common/claim_check.py``; docs/patterns/claim-check.md).
"""

from __future__ import annotations

#: Largest body sent inline, in bytes (64 KiB). A body of exactly this size travels inline; one byte more
#: travels by reference.
MAX_INLINE_BYTES = 64 * 1024
#: Prefix of stored bodies in the claim-check bucket; the rest of the key is the body's sha256 (hex), so the
#: same body is stored once however often it is published.
KEY_PREFIX = "claim-checks/"
#: AMQP header that marks a message whose body is a claim check, not the event itself.
HEADER = "x-claim-check"
#: Its value: the version of the reference format.
HEADER_VALUE = "s3-v1"
#: Content type of a claim check's body (the reference), and of the stored object.
REFERENCE_CONTENT_TYPE = "application/json"
STORED_CONTENT_TYPE = "application/octet-stream"


def key_of(sha256: str) -> str:
    """Key of a stored body whose sha256 (64 lower-case hex digits) is ``sha256``."""
    return f"{KEY_PREFIX}{sha256}"
