"""The local system's profiles and service environments follow the contract and docs/local-system.md (no servers)."""

import functools
import os
import subprocess

import pytest

from contract.environment import names_of
from contract.messaging import BILLING_QUEUE, EXPRESS_QUEUE
from contract.permissions import group_permissions_setting
from contract.services import SERVICE_NAMES
from contract.services import SERVICES as CONTRACT_SERVICES
from local_system import prereqs
from local_system.credentials import load_or_create, store_password
from local_system.identity.cognito import PoolInfo, gateway_settings
from local_system.images import check_environment, image_services
from local_system.processes import LocalSystemError
from local_system.profiles import DATABASES, REPO_ROOT, Profile, get_profile
from local_system.services import ServiceProcess
from local_system.system import PARTS, LocalSystem


def service_env(name: str, profile: str = "test") -> dict[str, str]:
    return ServiceProcess(name, get_profile(profile)).env()


def test_test_profile_ports_match_conventions():
    """The test profile uses the ports docs/local-system.md reserves for test runs."""
    profile = get_profile("test")
    assert (profile.postgres_port, profile.amqp_port, profile.rabbitmq_dist_port, profile.epmd_port) == (
        26432,
        26672,
        26673,
        26369,
    )
    assert profile.service_ports == {"inventory": 18080, "billing": 18081, "gateway": 13000}
    assert (profile.redis_port, profile.redis_cluster_port) == (26379, 26380)


def test_test_profile_ports_lie_below_the_ephemeral_range():
    """Every port of the test profile is below 32768: a part the tests restart never finds its port taken as the
    source port of an outgoing connection (Linux hands those out from 32768 up)."""
    profile = get_profile("test")
    ports = [value for value in vars(profile).values() if isinstance(value, int)]
    ports += list(profile.service_ports.values()) + list(profile.replica_ports.values())
    assert len(ports) > 15
    assert [port for port in ports if port >= 32768] == []


def test_dev_profile_ports_match_conventions(monkeypatch):
    """`make up` uses the dev ports, billing on 8081 so it does not clash with inventory's 8080."""
    for name in ("INVENTORY_PORT", "BILLING_PORT", "GATEWAY_PORT"):
        monkeypatch.delenv(name, raising=False)
    profile = get_profile("dev")
    assert (profile.postgres_port, profile.amqp_port, profile.epmd_port) == (55432, 55672, 54369)
    assert profile.service_ports == {"inventory": 8080, "billing": 8081, "gateway": 3000}


def test_billing_port_is_configurable_in_dev(monkeypatch):
    """BILLING_PORT moves billing's local port."""
    monkeypatch.setenv("BILLING_PORT", "9191")
    assert get_profile("dev").service_ports["billing"] == 9191


def test_profile_comes_from_environment(monkeypatch):
    """LOCAL_PROFILE selects the profile when none is given; unknown names are refused."""
    monkeypatch.setenv("LOCAL_PROFILE", "test")
    assert get_profile().name == "test"
    with pytest.raises(LocalSystemError, match="unknown profile"):
        get_profile("prod")


def test_inventory_env_points_at_movies_db_and_the_broker():
    """inventory gets movies_db over TCP 127.0.0.1 and, for the purchase saga, the broker like billing: the URL
    without credentials and the broker's secret, no password."""
    env = service_env("inventory")
    assert (env["DATABASE_HOST"], env["DATABASE_PORT"], env["DATABASE_NAME"]) == ("127.0.0.1", "26432", "movies_db")
    # Its login comes from its own secret in the local Secrets Manager, never from the environment.
    assert env["DATABASE_SECRET_ID"] == "local-test/inventory"
    assert "DATABASE_USER" not in env and "DATABASE_PASSWORD" not in env
    assert (env["AWS_ENDPOINT_URL_SECRETS_MANAGER"], env["AWS_REGION"]) == ("http://127.0.0.1:26600", "eu-west-1")
    assert (env["PORT"], env["BIND_HOST"]) == ("18080", "127.0.0.1")
    assert env["RABBITMQ_URL"] == "amqp://127.0.0.1:26672/"
    assert env["RABBITMQ_SECRET_ID"] == "local-test/rabbitmq"
    assert not any(key.endswith("PASSWORD") for key in env)


def test_billing_env_has_database_and_broker():
    """billing gets billing_db, the broker URL without credentials, the secrets of both logins, and the queue."""
    env = service_env("billing")
    assert env["DATABASE_NAME"] == "billing_db"
    assert env["RABBITMQ_URL"] == "amqp://127.0.0.1:26672/"
    assert (env["DATABASE_SECRET_ID"], env["RABBITMQ_SECRET_ID"]) == ("local-test/billing", "local-test/rabbitmq")
    assert not any(key.endswith("PASSWORD") for key in env)
    assert env["BILLING_QUEUE"] == BILLING_QUEUE.name
    assert env["BILLING_EXPRESS_QUEUE"] == EXPRESS_QUEUE.name
    assert "BILLING_CONSUME" not in env  # one billing process consumes both queues, express first
    assert env["PORT"] == "18081"


def test_gateway_env_has_inventory_url_and_no_database():
    """The gateway reaches inventory by INVENTORY_URL and never gets database credentials."""
    env = service_env("gateway")
    assert env["INVENTORY_URL"] == "http://127.0.0.1:18080"
    assert env["PORT"] == "13000"
    assert not any(key.startswith("DATABASE_") for key in env)


def test_stray_database_variables_do_not_leak_into_services(monkeypatch):
    """A DATABASE_* variable in the developer's shell does not reach a service that has no database."""
    monkeypatch.setenv("DATABASE_PASSWORD", "from-my-shell")
    assert "DATABASE_PASSWORD" not in service_env("gateway")


def test_real_aws_credentials_never_reach_a_service(monkeypatch):
    """The developer's AWS_* settings are dropped: services talk to the emulator with its dummy keys only."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "real-key")
    monkeypatch.setenv("AWS_PROFILE", "prod")
    env = service_env("billing")
    assert env["AWS_SECRET_ACCESS_KEY"] == "local"
    assert "AWS_PROFILE" not in env


def test_credentials_file_is_created_private_and_stable(tmp_path):
    """credentials.env is created with mode 0600 and random passwords, and read back unchanged."""
    path = tmp_path / "credentials.env"
    first = load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    passwords = [login.password for login in first.logins.values()]
    assert len(set(passwords)) == 3 and all(len(password) >= 24 for password in passwords)
    assert (first.database("movies_db").user, first.database("billing_db").user) == ("inventory", "billing")
    assert load_or_create(path) == first


def test_credentials_file_of_the_shared_role_era_gets_per_service_logins(tmp_path):
    """A credentials.env written before per-service roles keeps its broker login and gains database logins."""
    path = tmp_path / "credentials.env"
    path.write_text("POSTGRES_USER=app\nPOSTGRES_PASSWORD=old\nRABBITMQ_USER=app\nRABBITMQ_PASSWORD=mq\n")
    path.chmod(0o600)
    credentials = load_or_create(path)
    assert (credentials.rabbitmq.user, credentials.rabbitmq.password) == ("app", "mq")
    assert credentials.logins["inventory"].user == "inventory"
    assert load_or_create(path) == credentials
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_rotated_password_is_recorded_alone(tmp_path):
    """store_password changes one login and keeps the others."""
    path = tmp_path / "credentials.env"
    before = load_or_create(path)
    after = store_password(path, "billing", "new-password")
    assert after.logins["billing"].password == "new-password"
    assert after.logins["inventory"] == before.logins["inventory"]
    assert load_or_create(path) == after


def test_missing_servers_without_root_name_the_apt_command(monkeypatch):
    """Not root and PostgreSQL/RabbitMQ missing: a clear error with the exact apt command, nothing installed."""
    monkeypatch.setattr(prereqs, "postgres_bin_dir", lambda: None)
    monkeypatch.setattr(prereqs, "rabbitmq_scripts_dir", lambda: None)
    monkeypatch.setattr(prereqs.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(prereqs.subprocess, "run", lambda *a, **k: pytest.fail("must not run apt-get"))
    with pytest.raises(LocalSystemError, match=r"sudo apt-get install -y postgresql rabbitmq-server"):
        prereqs.ensure_servers()


def test_every_part_has_a_log_file():
    """`make logs SERVICE=<part>` accepts every part the CLI offers, the Cognito emulator included."""
    assert set(LocalSystem("test").log_files()) == set(PARTS)


def test_exclusive_use_with_no_timeout_refuses_at_once():
    """A second holder with timeout=0 (``reset``) is refused without waiting; the lock is free afterwards."""
    # Its own lock file (named after the profile and port): never the test profile's session lock.
    profile = Profile("unit-lock", 1, 2, 3, 4, {"inventory": 5, "billing": 6, "gateway": 7})
    said = []
    with LocalSystem(profile).exclusive_use(timeout=0):
        with pytest.raises(LocalSystemError, match="in use by another run"):
            with LocalSystem(profile).exclusive_use(timeout=0, waiting=said.append):
                pytest.fail("got the lock twice")
    assert said == []
    with LocalSystem(profile).exclusive_use(timeout=0):
        pass


def test_profiles_and_databases_follow_the_contract():
    """Every profile has a port for each contract service; the databases are the ones the services own."""
    for name in ("dev", "test"):
        assert tuple(get_profile(name).service_ports) == SERVICE_NAMES
    assert DATABASES == tuple(spec.database for spec in CONTRACT_SERVICES if spec.database)
    assert {service_env(spec.name).get("DATABASE_NAME") for spec in CONTRACT_SERVICES} == {*DATABASES, None}


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_service_settings_use_only_contract_names(name):
    """What the local system sets for a service is named by contract.environment for that service."""
    settings = ServiceProcess(name, get_profile("test")).settings()
    assert set(settings) <= names_of(name)
    assert settings["SERVICE_NAME"] == name


def test_services_import_their_packages_and_the_contract():
    """PYTHONPATH holds services/ (the service packages) and the repository root (``import contract``)."""
    paths = service_env("billing")["PYTHONPATH"].split(os.pathsep)
    assert paths == [str(REPO_ROOT / "services"), str(REPO_ROOT)]


def test_billing_worker_count_is_not_set_locally(monkeypatch):
    """billing's single worker comes from the contract (gunicorn_config), not from the local environment."""
    monkeypatch.delenv("GUNICORN_WORKERS", raising=False)
    assert "GUNICORN_WORKERS" not in service_env("billing")


def test_gateway_group_map_is_the_contract_map(tmp_path):
    """The emulated pool's settings carry the contract's group -> permission map."""
    info = PoolInfo(pool_id="eu-west-1_x", client_id="c", username="demo", password="p")
    settings = gateway_settings(info, "http://127.0.0.1:1")
    assert settings["AUTH_GROUP_PERMISSIONS"] == group_permissions_setting()
    assert set(settings) <= names_of("gateway")


@pytest.mark.parametrize("spec", CONTRACT_SERVICES, ids=SERVICE_NAMES)
def test_image_check_environment_follows_the_contract(spec):
    """scripts/images.sh starts each image with contract names, its database and the contract queue."""
    env = check_environment(spec.name)
    assert set(env) <= names_of(spec.name)
    assert env.get("DATABASE_NAME") == spec.database
    assert "GUNICORN_WORKERS" not in env
    if "BILLING_QUEUE" in names_of(spec.name):
        assert env["BILLING_QUEUE"] == BILLING_QUEUE.name
    assert (spec.name, spec.port) in image_services()


def test_image_commands_print_the_contract():
    """`python3 -m local_system image-services` / `check-env` (what images.sh reads) run without a venv."""
    run = functools.partial(
        subprocess.run, cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=30
    )
    listed = run(["python3", "-m", "local_system", "image-services"]).stdout.split("\n")
    assert listed[:-1] == [f"{spec.name} {spec.port}" for spec in CONTRACT_SERVICES]
    printed = run(["python3", "-m", "local_system", "check-env", "gateway"]).stdout.splitlines()
    assert printed == [f"{key}={value}" for key, value in check_environment("gateway").items()]


def test_billing_copies_get_the_profiles_replica_ports():
    """make scale: billing's extra copies listen on 8082+ (dev) and 18082+ (test), each with its own files."""
    dev, test = get_profile("dev"), get_profile("test")
    assert [ServiceProcess("billing", dev, n).port for n in (1, 2, 3)] == [8081, 8082, 8083]
    copy = ServiceProcess("billing", test, 2)
    assert (copy.port, copy.label, copy.pid_file.name, copy.log_file.name) == (
        18082, "billing-2", "billing-2.pid", "billing-2.log"
    )
    settings = copy.settings()
    assert settings["PORT"] == "18082" and settings["SERVICE_NAME"] == "billing"
    assert settings["PROMETHEUS_MULTIPROC_DIR"].endswith("billing-2")


def test_only_consumers_can_be_scaled_locally():
    """A service behind a load balancer on AWS (the gateway) cannot get a second local copy."""
    with pytest.raises(LocalSystemError, match="gateway cannot be scaled"):
        ServiceProcess("gateway", get_profile("dev"), 2)
