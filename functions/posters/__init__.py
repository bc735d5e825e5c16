"""The poster pipeline's three filters (pipes and filters, docs/patterns/pipes-and-filters.md), one Lambda each.

- :mod:`.validate`  UPLOADED  -> VALIDATED (+ ``poster.rejected`` on RESULTS): size, type, magic bytes,
  dimensions; the pixels re-encoded without metadata.
- :mod:`.resize`    VALIDATED -> RESIZED: one WebP per ``contract.posters.SIZES`` entry.
- :mod:`.publish`   RESIZED   -> RESULTS: the WebPs copied to the web content bucket, ``poster.published``.

Each ``handler(event, context)`` takes a Lambda SQS event and answers ``{"batchItemFailures": [...]}`` (partial
batch responses): only records that failed for a reason a retry may cure are listed, SQS delivers them again
and moves them to the pipe's dead-letter queue after ``MAX_RECEIVE_COUNT`` receives.

Packaging (the Lambda asset, :mod:`.asset`): one folder holding this package as ``posters/`` and a copy of the
repository's ``contract/`` package (standard library only, as every container image carries it), plus Pillow
for the Lambda architecture; handlers ``posters.validate.handler``, ``posters.resize.handler``,
``posters.publish.handler``. The modules import each other relatively, so the same code runs as
``functions.posters`` here (tests, the local runner) and as ``posters`` on Lambda. Dependencies: boto3 (the
Lambda runtime's) and Pillow (``requirements.txt``); nothing from ``services/`` or ``local_system/``.
"""
