"""Presigned downloads of invoices (the valet key): billing signs a short-lived S3 GET of one invoice object.

The invoicer stores each confirmed purchase's invoice at ``invoices/<order id>.pdf`` in ``INVOICES_BUCKET``
(``contract.invoices``); billing, whose role may read ``invoices/*`` only, signs a GET of it valid
``DOWNLOAD_EXPIRES_SECONDS`` for the order's reader. Signing is local (no S3 call), but boto3 and a client cost
a worker tens of MiB, so both are loaded on the first invoice request only (as ``inventory.aws`` does).
Credentials and endpoint are boto3's: the task role on AWS; locally the emulator's keys and
``AWS_ENDPOINT_URL_S3`` (path-style, as a bucket cannot be a subdomain of 127.0.0.1).
"""

from __future__ import annotations

import threading
from typing import Any

from common.config import env_str
from contract import environment as env
from contract.invoices import CONTENT_TYPE, DOWNLOAD_EXPIRES_SECONDS

_clients: dict[tuple[str | None, str | None], Any] = {}
_lock = threading.Lock()


def bucket() -> str:
    """The invoices bucket (INVOICES_BUCKET); empty when invoices are not configured."""
    return env_str(env.INVOICES_BUCKET).strip()


def _s3() -> Any:
    """The process's S3 client for the configured endpoint and region (boto3 imported and the client built on
    first use; clients are thread-safe)."""
    endpoint, region = env_str(env.AWS_ENDPOINT_URL_S3) or None, env_str(env.AWS_REGION) or None
    with _lock:
        if (endpoint, region) not in _clients:
            import boto3
            from botocore.config import Config

            _clients[endpoint, region] = boto3.client(
                "s3",
                region_name=region,
                endpoint_url=endpoint,
                config=Config(
                    signature_version="s3v4",
                    s3={"addressing_style": "path" if endpoint else "virtual"},
                    connect_timeout=2, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"},
                ),
            )
        return _clients[endpoint, region]


def download_url(bucket_name: str, key: str, order_id: str) -> str:
    """A presigned GET of ``key``, valid ``DOWNLOAD_EXPIRES_SECONDS``, that saves as ``invoice-<order id>.pdf``."""
    return _s3().generate_presigned_url(
        "get_object",
        Params={
            "Bucket": bucket_name,
            "Key": key,
            "ResponseContentType": CONTENT_TYPE,
            "ResponseContentDisposition": f'attachment; filename="invoice-{order_id}.pdf"',
        },
        ExpiresIn=DOWNLOAD_EXPIRES_SECONDS,
    )
