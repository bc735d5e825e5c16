"""The services of the system: name, port, owned database and process model."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Service:
    """One deployable service (one container image, one ECS service, one local gunicorn process)."""

    name: str
    port: int
    """Port the container listens on (on AWS and in Compose); the local system may map it elsewhere."""
    description: str
    database: str | None = None
    """The PostgreSQL database this service owns (no other service reads it), or None."""
    single_worker: bool = False
    """Run exactly one gunicorn worker process per task: the service does its work on one background
    consumer per process and scales out by tasks, so more workers would only split prefetch and batches."""

    @property
    def module(self) -> str:
        """The Python package under ``services/`` (and the gunicorn application ``<module>:create_app()``)."""
        return self.name

    @property
    def wsgi_app(self) -> str:
        """What gunicorn loads: the application factory, called once per worker."""
        return f"{self.module}:create_app()"


INVENTORY = Service(
    "inventory", 8080, "Movie catalogue: a JSON CRUD API over PostgreSQL movies_db.", database="movies_db"
)
BILLING = Service(
    "billing",
    8080,
    "Stores the orders queued on RabbitMQ in PostgreSQL billing_db, exactly once; dead-letters bad ones.",
    database="billing_db",
    single_worker=True,
)
GATEWAY = Service(
    "gateway",
    3000,
    "The only public entry: authenticates callers, forwards /api/movies to inventory, publishes orders.",
)

#: In start order: inventory first because the gateway forwards to it.
SERVICES: tuple[Service, ...] = (INVENTORY, BILLING, GATEWAY)
SERVICE_NAMES: tuple[str, ...] = tuple(service.name for service in SERVICES)
SERVICES_BY_NAME: dict[str, Service] = {service.name: service for service in SERVICES}


def service(name: str) -> Service:
    """The service called ``name``; ValueError names the known ones."""
    if name in SERVICES_BY_NAME:
        return SERVICES_BY_NAME[name]
    raise ValueError(f"unknown service {name!r}; use one of: {', '.join(SERVICE_NAMES)}")
