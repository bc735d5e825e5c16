"""The broker's rotation Lambda (functions/broker_rotation/handler.py), step by step, against fakes of Secrets
Manager and of RabbitMQ's management API (the real ones: tests/integration/test_credential_rotation.py)."""

from __future__ import annotations

import json

import pytest

from local_system.rotation import broker_handler

handler = broker_handler()
SECRET = "broker"


class MissingError(Exception):
    """Shaped like botocore's ClientError for ResourceNotFoundException."""

    def __init__(self):
        super().__init__("not found")
        self.response = {"Error": {"Code": "ResourceNotFoundException"}}


class FakeSecrets:
    """Versions and stages of one secret, with boto3's method names."""

    def __init__(self, user: str = "app", password: str = "old"):  # noqa: S107 - a test value
        self.values = {"v1": json.dumps({"username": user, "password": password, "host": "b"})}
        self.stages = {"v1": ["AWSCURRENT"]}

    def _version(self, stage):
        return next((version for version, stages in self.stages.items() if stage in stages), None)

    def get_secret_value(self, SecretId, VersionStage="AWSCURRENT", VersionId=None):
        version = VersionId or self._version(VersionStage)
        if version not in self.values or VersionStage not in self.stages.get(version, []):
            raise MissingError()
        return {"SecretString": self.values[version], "VersionId": version}

    def put_secret_value(self, SecretId, ClientRequestToken, SecretString, VersionStages):
        for stage in VersionStages:
            for stages in self.stages.values():
                if stage in stages:
                    stages.remove(stage)
        self.values[ClientRequestToken] = SecretString
        self.stages[ClientRequestToken] = list(VersionStages)

    def describe_secret(self, SecretId):
        return {"VersionIdsToStages": {version: list(stages) for version, stages in self.stages.items()}}

    def update_secret_version_stage(self, SecretId, VersionStage, MoveToVersionId, RemoveFromVersionId):
        assert VersionStage in self.stages[RemoveFromVersionId]
        self.stages[RemoveFromVersionId].remove(VersionStage)
        self.stages[MoveToVersionId].append(VersionStage)

    def login(self, stage):
        value = json.loads(self.get_secret_value(SECRET, VersionStage=stage)["SecretString"])
        return value["username"], value["password"]


class FakeBroker(handler.Management):
    """The management API of a broker whose one user has ``password`` and ``tags``."""

    def __init__(self, password: str = "old", tags=("administrator",)):  # noqa: S107 - a test value
        super().__init__("https://broker.example")
        self.password, self.tags, self.calls = password, list(tags), []

    def _request(self, method, path, user, password, body=None):
        self.calls.append((method, path))
        if password != self.password:
            raise handler.urllib.error.HTTPError(path, 401, "Unauthorized", {}, None)
        if path == "/api/whoami":
            return {"name": user, "tags": self.tags}
        if method == "GET":
            return {"name": user, "tags": self.tags}
        self.password, self.tags = body["password"], body["tags"].split(",")
        return None


def _run(secrets, broker, token, *steps):
    for step in steps:
        handler.rotate({"SecretId": SECRET, "ClientRequestToken": token, "Step": step}, secrets, broker)


def test_a_full_rotation_changes_the_broker_password_and_moves_awscurrent():
    """The four steps: new random password pending, set on the broker with the tags kept, tested, current."""
    secrets, broker = FakeSecrets(), FakeBroker()
    _run(secrets, broker, "v2", "createSecret", "setSecret", "testSecret", "finishSecret")
    user, password = secrets.login("AWSCURRENT")
    assert user == "app" and password not in ("old", "") and len(password) >= 24
    assert broker.password == password and broker.tags == ["administrator"]
    assert json.loads(secrets.values["v2"])["host"] == "b"  # the rest of the secret is kept
    assert secrets.stages["v1"] == []


def test_every_step_can_be_retried():
    """Secrets Manager retries failed steps: running each twice changes nothing the second time."""
    secrets, broker = FakeSecrets(), FakeBroker()
    _run(secrets, broker, "v2", "createSecret", "createSecret")
    pending = secrets.login("AWSPENDING")
    _run(secrets, broker, "v2", "setSecret")
    puts = [call for call in broker.calls if call[0] == "PUT"]
    _run(secrets, broker, "v2", "setSecret", "testSecret", "testSecret", "finishSecret", "finishSecret")
    assert [call for call in broker.calls if call[0] == "PUT"] == puts  # the retried setSecret did not PUT
    assert secrets.login("AWSCURRENT") == pending


def test_between_set_and_finish_only_the_pending_password_works():
    """The window the services bridge with their AWSPENDING fallback."""
    secrets, broker = FakeSecrets(), FakeBroker()
    _run(secrets, broker, "v2", "createSecret", "setSecret")
    assert secrets.login("AWSCURRENT")[1] == "old"
    assert broker.password == secrets.login("AWSPENDING")[1]


def test_test_secret_fails_when_the_broker_refuses_the_pending_password():
    """A pending password that does not work stops the rotation before AWSCURRENT moves."""
    secrets, broker = FakeSecrets(), FakeBroker()
    _run(secrets, broker, "v2", "createSecret")
    with pytest.raises(handler.RotationError, match="refuses the pending password"):
        _run(secrets, broker, "v2", "testSecret")


def test_set_secret_fails_when_no_known_password_works():
    """A broker that accepts neither password is reported, not overwritten."""
    secrets, broker = FakeSecrets(), FakeBroker(password="changed-by-hand")
    _run(secrets, broker, "v2", "createSecret")
    with pytest.raises(handler.RotationError, match="neither"):
        _run(secrets, broker, "v2", "setSecret")


def test_a_version_that_is_already_current_is_left_alone():
    """Steps for the version that is AWSCURRENT do nothing (a rotation that already finished)."""
    secrets, broker = FakeSecrets(), FakeBroker()
    _run(secrets, broker, "v1", "createSecret", "setSecret", "testSecret", "finishSecret")
    assert secrets.stages == {"v1": ["AWSCURRENT"]} and broker.calls == []


def test_unknown_versions_and_steps_are_refused():
    """Only createSecret may meet a version that does not exist yet; unknown steps fail."""
    secrets, broker = FakeSecrets(), FakeBroker()
    with pytest.raises(handler.RotationError, match="does not exist"):
        _run(secrets, broker, "v9", "setSecret")
    _run(secrets, broker, "v2", "createSecret")
    with pytest.raises(handler.RotationError, match="unknown step"):
        _run(secrets, broker, "v2", "deleteSecret")


def test_the_management_url_must_be_http():
    """BROKER_MANAGEMENT_URL is checked before any request (urllib would also open file:// URLs)."""
    with pytest.raises(handler.RotationError):
        handler.Management("file:///etc/passwd")


def test_the_lambda_entry_point_needs_the_management_url(monkeypatch):
    """Without BROKER_MANAGEMENT_URL the handler fails clearly (boto3 is in the Lambda runtime)."""
    monkeypatch.delenv("BROKER_MANAGEMENT_URL", raising=False)
    with pytest.raises(handler.RotationError, match="BROKER_MANAGEMENT_URL"):
        handler.handler({"SecretId": SECRET, "ClientRequestToken": "v2", "Step": "createSecret"}, None)
