"""docker-compose.yml agrees with the contract package (no servers, no engine: the file is only parsed).

The compose file is written by hand (comments, anchors, the identity provider's hashed ids) rather than
generated; these tests make every value it shares with the other processes equal to the contract's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from contract.environment import names_of
from contract.messaging import BILLING_QUEUE, EXPRESS_QUEUE
from contract.permissions import group_permissions_setting
from contract.services import INVENTORY, SERVICE_NAMES, SERVICES, Service

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _environment(compose: dict, name: str) -> dict[str, str]:
    return {key: str(value) for key, value in compose["services"][name].get("environment", {}).items()}


def _build_args(compose: dict, name: str) -> dict[str, str | None]:
    """``args`` in list form (``KEY`` passes the shell's value, ``KEY=value`` sets one) as a dict."""
    args = {}
    for entry in compose["services"][name]["build"]["args"]:
        key, _, value = entry.partition("=")
        args[key] = value if _ else None
    return args


@pytest.mark.parametrize("spec", SERVICES, ids=SERVICE_NAMES)
def test_each_service_is_built_from_the_one_dockerfile_with_its_name_and_port(compose: dict, spec: Service):
    build = compose["services"][spec.name]["build"]
    assert (build["context"], build["dockerfile"]) == (".", "services/Dockerfile")
    assert (REPO / build["dockerfile"]).is_file()
    assert _build_args(compose, spec.name) == {"BASE_IMAGE": None, "SERVICE": spec.name, "PORT": str(spec.port)}


@pytest.mark.parametrize("spec", SERVICES, ids=SERVICE_NAMES)
def test_environment_names_are_the_ones_the_contract_lists_for_the_service(compose: dict, spec: Service):
    unknown = set(_environment(compose, spec.name)) - names_of(spec.name)
    assert not unknown, f"{spec.name} does not read {sorted(unknown)} (contract.environment)"


@pytest.mark.parametrize("spec", SERVICES, ids=SERVICE_NAMES)
def test_port_is_the_contract_port(compose: dict, spec: Service):
    assert _environment(compose, spec.name)["PORT"] == str(spec.port)
    # The probe names no port (it reads $PORT), or names this one.
    test = compose["services"][spec.name]["healthcheck"]["test"]
    assert test[:4] == ["CMD", "python", "-m", "common.healthcheck"]
    assert test[4:] in ([], [f"http://127.0.0.1:{spec.port}/health"])


@pytest.mark.parametrize("spec", SERVICES, ids=SERVICE_NAMES)
def test_database_is_the_one_the_service_owns(compose: dict, spec: Service):
    env = _environment(compose, spec.name)
    if spec.database is None:
        assert not any(key.startswith("DATABASE_") for key in env)
        return
    assert env["DATABASE_NAME"] == spec.database
    server = compose["services"][env["DATABASE_HOST"]]
    assert server["environment"]["POSTGRES_DB"] == spec.database
    assert env["DATABASE_HOST"] in compose["services"][spec.name]["depends_on"]


@pytest.mark.parametrize("spec", SERVICES, ids=SERVICE_NAMES)
def test_queue_is_the_contract_queue_for_its_consumer_and_publishers(compose: dict, spec: Service):
    env = _environment(compose, spec.name)
    if spec.name == BILLING_QUEUE.consumer or spec.name in BILLING_QUEUE.publishers:
        assert env["BILLING_QUEUE"] == BILLING_QUEUE.name
        assert env["BILLING_EXPRESS_QUEUE"] == EXPRESS_QUEUE.name
    else:
        assert "BILLING_QUEUE" not in env


@pytest.mark.parametrize("spec", SERVICES, ids=SERVICE_NAMES)
def test_broker_settings_go_to_exactly_the_services_that_read_them(compose: dict, spec: Service):
    """RABBITMQ_URL (the compose broker) is set for each service the contract says reads it (inventory too, for
    the purchase saga) and for no other."""
    env = _environment(compose, spec.name)
    reads_broker = "RABBITMQ_URL" in names_of(spec.name)
    assert env.get("RABBITMQ_URL") == ("amqp://rabbitmq:5672/" if reads_broker else None)


def test_gateway_group_map_is_the_contract_map(compose: dict):
    assert _environment(compose, "gateway")["AUTH_GROUP_PERMISSIONS"] == group_permissions_setting()


def test_gateway_reaches_inventory_on_its_contract_port(compose: dict):
    assert _environment(compose, "gateway")["INVENTORY_URL"] == f"http://{INVENTORY.name}:{INVENTORY.port}"


def test_only_the_gateway_is_published_on_its_contract_port(compose: dict):
    for spec in SERVICES:
        ports = compose["services"][spec.name].get("ports", [])
        if spec.name == "gateway":
            assert [entry.rsplit(":", 1)[1] for entry in ports] == [str(spec.port)]
        else:
            assert ports == []


def test_worker_count_is_left_to_the_contract(compose: dict):
    """billing's single worker is decided by contract.services (enforced by gunicorn_config), not here."""
    for spec in SERVICES:
        assert "GUNICORN_WORKERS" not in _environment(compose, spec.name)


def test_identity_init_gets_the_contract(compose: dict):
    """identity-init imports the contract (group map, variable names): it is mounted next to local_system."""
    volumes = compose["services"]["identity-init"]["volumes"]
    assert {"./local_system:/app/local_system:ro", "./contract:/app/contract:ro"} <= set(volumes)
