"""boto3 clients of the poster feature (S3 for the presigned uploads, SQS for the results), built lazily.

Inventory's workers import no boto3 unless posters are configured: boto3 and one client cost each worker
tens of MiB (``services/inventory/README.md`` has the figures measured here), which a worker without posters
should not pay (``common.secret_fetch`` keeps boto3 out of the workers for the same reason). So the import
happens on the first poster request, or when the results consumer starts, and each client is built once per
process (boto3 clients are thread-safe; building one is the expensive part).

Credentials and endpoints are boto3's own business: on AWS the ECS task role and the regional endpoints;
locally the emulator's dummy keys (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``) and
``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL_SQS``.
"""

from __future__ import annotations

import threading
from typing import Any

from common.config import env_str
from contract import environment as env

_clients: dict[str, Any] = {}
_lock = threading.Lock()


def _build(service: str) -> Any:
    import boto3
    from botocore.config import Config

    endpoint = env_str(env.AWS_ENDPOINT_URL_S3 if service == "s3" else env.AWS_ENDPOINT_URL_SQS) or None
    options: dict[str, Any] = {
        # Short timeouts: a request thread may wait on it. SQS long polls longer (the consumer's own client).
        "connect_timeout": 2,
        "read_timeout": 20 if service == "sqs" else 5,
        "retries": {"max_attempts": 2, "mode": "standard"},
    }
    if service == "s3":
        # The presigned URL is for a browser. On AWS: the regional virtual-hosted name
        # (https://<bucket>.s3.<region>.amazonaws.com), the one origin the web front end's CSP allows; with an
        # endpoint (the local emulator at http://127.0.0.1:<port>): path-style, as a bucket name cannot be a
        # subdomain of an IP address.
        options["signature_version"] = "s3v4"
        options["s3"] = {"addressing_style": "path" if endpoint else "virtual"}
    return boto3.client(
        service,
        region_name=env_str(env.AWS_REGION) or None,
        endpoint_url=endpoint,
        config=Config(**options),
    )


def client(service: str) -> Any:
    """The process's boto3 client for ``"s3"`` or ``"sqs"`` (built, and boto3 imported, on first use)."""
    existing = _clients.get(service)
    if existing is not None:
        return existing
    with _lock:
        if service not in _clients:
            _clients[service] = _build(service)
        return _clients[service]
