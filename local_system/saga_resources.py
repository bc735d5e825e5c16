"""The saga's S3 bucket in the local emulator (moto), and who gets which address.

On AWS the data stack creates one private, encrypted, versioned bucket for invoices (``invoices/``,
contract.invoices) and claim checks (``claim-checks/``, contract.claim_check). Here it is
``movies-local-invoices`` in the emulator that already runs for Cognito; the emulator keeps everything in memory,
so :func:`provision` runs at every emulator start, right after the poster pipeline's resources.

:func:`service_settings` is what billing and inventory get to reach it (only the names the contract lists for
the service: a service that does not read a variable yet is not handed it), :func:`invoicer_settings` the
local invoicer's (``local_system/invoicer_part.py``). Standard library only, like the rest of the local system.
"""

from __future__ import annotations

from contract import environment as E
from contract import invoices
from local_system.credentials import BROKER
from local_system.emulator_api import DUMMY_KEY, REGION
from local_system.poster_resources import emulator_url, ensure_bucket
from local_system.profiles import Profile
from local_system.secret_store import secret_name

#: The one bucket of invoices and claim checks (prefixes ``invoices/`` and ``claim-checks/``).
INVOICES_BUCKET = "movies-local-invoices"


def provision(url: str) -> None:
    """Create the bucket (idempotent)."""
    ensure_bucket(url, INVOICES_BUCKET)


def service_settings(profile: Profile, names: frozenset[str]) -> dict[str, str]:
    """The bucket settings and the emulator's S3 endpoint for a service reading ``names`` (contract.environment):
    billing signs invoice downloads (INVOICES_BUCKET) and both services store large events (CLAIM_CHECK_BUCKET).
    Empty when the service reads neither."""
    buckets = {E.INVOICES_BUCKET.name: INVOICES_BUCKET, E.CLAIM_CHECK_BUCKET.name: INVOICES_BUCKET}
    settings = {name: value for name, value in buckets.items() if name in names}
    if not settings:
        return {}
    sdk = {
        E.AWS_ENDPOINT_URL_S3.name: emulator_url(profile),
        E.AWS_REGION.name: REGION,
        E.AWS_ACCESS_KEY_ID.name: DUMMY_KEY,
        E.AWS_SECRET_ACCESS_KEY.name: DUMMY_KEY,
    }
    return {**settings, **{name: value for name, value in sdk.items() if name in names}}


def invoicer_settings(profile: Profile) -> dict[str, str]:
    """The local invoicer's settings: the names the Lambda gets on AWS (contract.invoices), the broker login
    from the Secrets Manager emulator as Amazon MQ's comes from Secrets Manager, boto3 pointed at the emulator."""
    endpoint = emulator_url(profile)
    return {
        invoices.BUCKET_SETTING: INVOICES_BUCKET,
        invoices.BROKER_URL_SETTING: f"amqp://127.0.0.1:{profile.amqp_port}/",
        invoices.BROKER_SECRET_SETTING: secret_name(profile, BROKER),
        "AWS_ACCESS_KEY_ID": DUMMY_KEY, "AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
        "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL_S3": endpoint, "AWS_ENDPOINT_URL_SECRETS_MANAGER": endpoint,
    }
