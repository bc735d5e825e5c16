"""What the image checks (scripts/images.sh) take from the contract instead of restating it.

The checks start each image alone, with no database, broker or identity provider reachable: ``/health`` is
liveness only and must answer without them. Each image gets the variables it needs to start, by the
contract's names and with the contract's queue and database names; credentials are placeholders.
"""

from __future__ import annotations

from contract import environment as E
from contract.services import INVENTORY, SERVICES, service
from local_system.processes import LocalSystemError

PLACEHOLDER = "check"


def image_services() -> list[tuple[str, int]]:
    """Every service with the port its container listens on, in the contract's order."""
    return [(spec.name, spec.port) for spec in SERVICES]


def check_environment(name: str) -> dict[str, str]:
    """The environment the image of service ``name`` is started with by its check."""
    spec = service(name)
    names = E.names_of(name)
    # Small: one check container per service on a CI machine (the worker count stays the image's own).
    settings = {E.LOG_LEVEL.name: "INFO", E.GUNICORN_THREADS.name: "2"}
    if spec.database:
        settings.update({
            E.DATABASE_HOST.name: "127.0.0.1",
            E.DATABASE_PORT.name: E.DATABASE_PORT.default,
            E.DATABASE_NAME.name: spec.database,
            E.DATABASE_USER.name: PLACEHOLDER,
            E.DATABASE_PASSWORD.name: PLACEHOLDER,
        })
    if E.RABBITMQ_URL.name in names:
        settings.update({
            E.RABBITMQ_URL.name: E.RABBITMQ_URL.default,
            E.RABBITMQ_USER.name: PLACEHOLDER,
            E.RABBITMQ_PASSWORD.name: PLACEHOLDER,
            **{variable.name: name for name, variable in E.QUEUE_VARIABLES.items()},
        })
    if E.INVENTORY_URL.name in names:
        settings[E.INVENTORY_URL.name] = f"http://127.0.0.1:{INVENTORY.port}"
    if E.ORDER_ID_KEY.name in names:
        settings[E.ORDER_ID_KEY.name] = "0" * 64  # a placeholder key: the check signs nothing
    if E.AUTH_ISSUER.name in names:
        # Authentication stays on; the keys are fetched on the first authenticated request, not at start.
        settings.update({
            E.AUTH_ISSUER.name: "http://127.0.0.1:9/issuer",
            E.AUTH_ALLOWED_CLIENT_IDS.name: "images-check",
        })
    unknown = sorted(set(settings) - names)
    if unknown:
        raise LocalSystemError(f"{name} does not read {', '.join(unknown)} (contract.environment)")
    return settings
