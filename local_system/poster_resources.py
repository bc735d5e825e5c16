"""The poster pipeline's S3 buckets and SQS queues in the local emulator (moto), and who gets which address.

What the stacks create on AWS, here in the emulator that already runs for Cognito (it keeps everything in
memory, so :func:`provision` runs at every emulator start, right after the user pool):

- buckets ``movies-local-uploads`` (uploads and each filter's output) and ``movies-local-web`` (published
  posters under ``posters/``, served by the local web edge at ``/posters/*``);
- one queue per pipe of ``contract.posters.PIPES`` and its dead-letter queue, with the same redrive policy
  (``maxReceiveCount`` = ``MAX_RECEIVE_COUNT``) and visibility timeout as on AWS;
- the uploads bucket's notification: ``s3:ObjectCreated:*`` under ``incoming/`` to the UPLOADED queue (S3
  first sends an ``s3:TestEvent`` there, which validate ignores).

Standard library only, like the rest of the local system: the S3 REST and the SQS JSON protocols over urllib
(moto checks no signature). :func:`poster_settings` is inventory's environment for the pipeline,
:func:`filter_settings` the filters' (the local runner's, ``local_system/poster_runner.py``).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from xml.sax.saxutils import escape

from contract import posters as C
from local_system import emulator_api
from local_system.emulator_api import REGION, EmulatorRefused
from local_system.processes import LocalSystemError
from local_system.profiles import Profile

#: moto's default account: part of every queue URL and ARN it hands out.
ACCOUNT = "123456789012"
UPLOAD_BUCKET = "movies-local-uploads"
WEB_BUCKET = "movies-local-web"
NOTIFICATION_ID = "poster-uploads"
#: Dead letters are kept for SQS's longest retention (14 days), as on AWS.
DLQ_RETENTION_SECONDS = 14 * 24 * 3600


def emulator_url(profile: Profile) -> str:
    """The emulator's endpoint (S3, SQS, Cognito and Secrets Manager alike)."""
    return f"http://127.0.0.1:{profile.cognito_port}"


def queue_url(profile: Profile, name: str) -> str:
    """URL of queue ``name`` (a pipe's or a dead-letter queue's) in the profile's emulator."""
    return f"{emulator_url(profile)}/{ACCOUNT}/{name}"


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


def poster_settings(profile: Profile) -> dict[str, str]:
    """Inventory's settings for posters: where uploads go, where results come from, and the emulator's endpoints
    for boto3 (on AWS the endpoints stay unset)."""
    url = emulator_url(profile)
    return {
        "POSTER_UPLOAD_BUCKET": UPLOAD_BUCKET,
        "POSTER_RESULTS_QUEUE_URL": queue_url(profile, C.RESULTS.name),
        "AWS_ENDPOINT_URL_S3": url,
        "AWS_ENDPOINT_URL_SQS": url,
    }


def filter_settings(profile: Profile) -> dict[str, dict[str, str]]:
    """Each filter's settings (functions/posters/common.py): the same four names the stack sets on AWS."""
    names = list(C.FILTERS)
    settings = {}
    for index, name in enumerate(names):
        values = {
            "UPLOAD_BUCKET": UPLOAD_BUCKET,
            "WEB_BUCKET": WEB_BUCKET,
            "RESULTS_QUEUE_URL": queue_url(profile, C.RESULTS.name),
        }
        if index + 1 < len(names):
            values["NEXT_QUEUE_URL"] = queue_url(profile, C.FILTERS[names[index + 1]].name)
        settings[name] = values
    return settings


# -- provisioning ------------------------------------------------------------------------------------------
def provision(url: str) -> None:
    """Create (or bring in line) the buckets, the queues and the upload notification; idempotent."""
    for pipe in C.PIPES:
        _queue(url, pipe.dead_letter_queue, {"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)})
        redrive = {"deadLetterTargetArn": queue_arn(pipe.dead_letter_queue), "maxReceiveCount": C.MAX_RECEIVE_COUNT}
        _queue(url, pipe.name, {
            "VisibilityTimeout": str(C.VISIBILITY_TIMEOUT_SECONDS),
            "RedrivePolicy": json.dumps(redrive),
        })
    for bucket in (UPLOAD_BUCKET, WEB_BUCKET):
        ensure_bucket(url, bucket)
    _notify_uploads(url)


def _sqs(url: str, action: str, payload: dict) -> dict:
    return emulator_api.call(url, f"AmazonSQS.{action}", "sqs", payload, json_version="1.0")


def _queue(url: str, name: str, attributes: dict[str, str]) -> str:
    """Create the queue with ``attributes``, or set them on the existing one; its URL."""
    try:
        return _sqs(url, "CreateQueue", {"QueueName": name, "Attributes": attributes})["QueueUrl"]
    except EmulatorRefused as exc:
        if "QueueAlreadyExists" not in exc.code and "QueueNameExists" not in exc.code:
            raise
    address = _sqs(url, "GetQueueUrl", {"QueueName": name})["QueueUrl"]
    _sqs(url, "SetQueueAttributes", {"QueueUrl": address, "Attributes": attributes})
    return address


def _s3(url: str, method: str, path: str, body: str = "") -> tuple[int, str]:
    """One S3 REST call (path-style); status and body of the answer, errors included."""
    request = urllib.request.Request(  # noqa: S310 - the local emulator's http:// URL
        f"{url.rstrip('/')}{path}",
        data=body.encode() if body else None,
        headers={"Authorization": emulator_api.authorization("s3"), "Content-Type": "application/xml"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the local emulator
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError as exc:
        raise LocalSystemError(f"the AWS emulator at {url} does not answer ({exc})") from None


def ensure_bucket(url: str, name: str) -> None:
    """Create bucket ``name`` in the emulator (idempotent: one it already owns is fine)."""
    configuration = (
        '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<LocationConstraint>{REGION}</LocationConstraint></CreateBucketConfiguration>"
    )
    status, answer = _s3(url, "PUT", f"/{name}", configuration)
    if status != 200 and "BucketAlreadyOwnedByYou" not in answer:
        raise LocalSystemError(f"the emulator refused to create bucket {name}: {status} {answer[:300]}")


def _notify_uploads(url: str) -> None:
    """ObjectCreated under incoming/ -> UPLOADED; left alone when already set (each set sends a test event)."""
    arn = queue_arn(C.UPLOADED.name)
    status, current = _s3(url, "GET", f"/{UPLOAD_BUCKET}?notification")
    if status == 200 and arn in current:
        return
    configuration = (
        '<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><QueueConfiguration>'
        f"<Id>{NOTIFICATION_ID}</Id><Queue>{escape(arn)}</Queue><Event>s3:ObjectCreated:*</Event>"
        "<Filter><S3Key><FilterRule><Name>prefix</Name>"
        f"<Value>{escape(C.INCOMING_PREFIX)}</Value></FilterRule></S3Key></Filter>"
        "</QueueConfiguration></NotificationConfiguration>"
    )
    status, answer = _s3(url, "PUT", f"/{UPLOAD_BUCKET}?notification", configuration)
    if status != 200:
        raise LocalSystemError(f"the emulator refused the uploads bucket's notification: {status} {answer[:300]}")
