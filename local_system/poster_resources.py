"""The poster pipeline's buckets and queues in the local emulator (names: ``contract.posters``).

Minimal version for inventory's settings only; the provisioning (buckets, queues with their dead-letter
queues, the upload notification, re-created at every emulator start) is written alongside the pipeline runner.
"""

from __future__ import annotations

from contract import posters
from local_system.profiles import Profile

#: moto's default account, part of every queue URL it hands out.
ACCOUNT = "123456789012"
#: The uploads bucket (incoming/, validated/, resized/) and the web content bucket (posters/).
UPLOADS_BUCKET = "movies-local-uploads"
WEB_BUCKET = "movies-local-web"


def emulator_url(profile: Profile) -> str:
    """Where the emulator (moto: Cognito, Secrets Manager, S3, SQS) answers."""
    return f"http://127.0.0.1:{profile.cognito_port}"


def queue_url(profile: Profile, name: str) -> str:
    """URL of the queue ``name`` in the profile's emulator."""
    return f"{emulator_url(profile)}/{ACCOUNT}/{name}"


def poster_settings(profile: Profile) -> dict[str, str]:
    """Inventory's poster settings for this profile (contract.environment names)."""
    return {
        "POSTER_UPLOAD_BUCKET": UPLOADS_BUCKET,
        "POSTER_RESULTS_QUEUE_URL": queue_url(profile, posters.RESULTS.name),
        "AWS_ENDPOINT_URL_S3": emulator_url(profile),
        "AWS_ENDPOINT_URL_SQS": emulator_url(profile),
    }
