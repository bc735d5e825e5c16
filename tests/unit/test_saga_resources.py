"""What the local system hands out for the saga's bucket (local_system/saga_resources.py): the services get the
bucket and the emulator's S3 endpoint only under names their contract lists; the invoicer gets the Lambda's
settings pointed at the local broker and emulator."""

from __future__ import annotations

from contract import environment as E
from contract import invoices
from local_system.profiles import get_profile
from local_system.saga_resources import INVOICES_BUCKET, invoicer_settings, service_settings
from local_system.secret_store import secret_name

PROFILE = get_profile("test")
EMULATOR = f"http://127.0.0.1:{PROFILE.cognito_port}"


def test_a_service_listing_the_buckets_gets_them_and_the_emulators_s3_endpoint():
    """Billing's names (both buckets and the S3 endpoint) give the one local bucket twice and the emulator."""
    names = frozenset({E.INVOICES_BUCKET.name, E.CLAIM_CHECK_BUCKET.name, E.AWS_ENDPOINT_URL_S3.name})
    assert service_settings(PROFILE, names) == {
        E.INVOICES_BUCKET.name: INVOICES_BUCKET,
        E.CLAIM_CHECK_BUCKET.name: INVOICES_BUCKET,
        E.AWS_ENDPOINT_URL_S3.name: EMULATOR,
    }


def test_a_service_listing_no_bucket_gets_nothing():
    """Without a bucket variable in its contract, no S3 setting is handed out (not even the endpoint)."""
    assert service_settings(PROFILE, E.names_of("gateway")) == {}


def test_the_invoicer_reads_the_local_broker_login_from_the_secret_emulator():
    """The invoicer's settings name the local bucket, the test broker's AMQP port and the broker's secret in
    the emulator (no password), with boto3 pointed at the emulator."""
    settings = invoicer_settings(PROFILE)
    assert settings[invoices.BUCKET_SETTING] == INVOICES_BUCKET
    assert settings[invoices.BROKER_URL_SETTING] == f"amqp://127.0.0.1:{PROFILE.amqp_port}/"
    assert settings[invoices.BROKER_SECRET_SETTING] == secret_name(PROFILE, "rabbitmq")
    assert settings["AWS_ENDPOINT_URL_S3"] == settings["AWS_ENDPOINT_URL_SECRETS_MANAGER"] == EMULATOR
    assert invoices.BROKER_PASSWORD_SETTING not in settings
