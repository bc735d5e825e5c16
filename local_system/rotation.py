"""``make rotate-credentials SERVICE=inventory|billing|rabbitmq``: one rotation, the way AWS runs it.

The four Secrets Manager rotation steps run one after the other against the secret in the local emulator and
the real local server:

- ``rabbitmq``: each step is the broker's rotation Lambda itself (functions/broker_rotation/handler.py),
  called with the event Secrets Manager would send; ``setSecret`` goes through RabbitMQ's management API.
- ``inventory``, ``billing``: the steps of AWS's hosted single-user rotation for RDS PostgreSQL.
  ``createSecret`` and ``finishSecret`` are the handler's (they only touch the secret); ``setSecret`` runs
  ``ALTER ROLE ... PASSWORD`` over the local admin connection; ``testSecret`` logs in with the new password.

Then, as Secrets Manager does when a rotation completes, ``AWSPENDING`` is removed, and the new password is
recorded in ``credentials.env`` (the local system's durable copy). Running services keep their open
connections; a new one refused with the old password makes them re-read the secret (services/common/secrets.py).
"""

from __future__ import annotations

import importlib.util
import subprocess
import time
import uuid
from collections.abc import Callable
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING

from local_system.credentials import BROKER, CREDENTIAL_NAMES, DATABASE_OWNERS, Login
from local_system.processes import LocalSystemError, port_open, wait_for
from local_system.profiles import REPO_ROOT
from local_system.secret_store import secret_name

if TYPE_CHECKING:
    from local_system.system import LocalSystem

HANDLER = REPO_ROOT / "functions" / "broker_rotation" / "handler.py"
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")


@cache
def broker_handler() -> ModuleType:
    """functions/broker_rotation/handler.py, loaded from its file (the Lambda's code, not a copy of it)."""
    spec = importlib.util.spec_from_file_location("broker_rotation_handler", HANDLER)
    if spec is None or spec.loader is None:
        raise LocalSystemError(f"cannot load {HANDLER}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _can_log_in(system: LocalSystem, database: str, login: Login) -> bool:
    """True when PostgreSQL accepts ``login`` on ``database`` over TCP (password in PGPASSWORD, not argv)."""
    argv, env = system.postgres.psql_argv(database, login)
    result = subprocess.run(
        [*argv, "-X", "-q", "-At", "-c", "SELECT 1"], env={**env, "PGCONNECT_TIMEOUT": "5"},
        capture_output=True, text=True, check=False,
    )
    return result.returncode == 0


class _DatabaseSteps:
    """setSecret and testSecret of the hosted single-user RDS rotation, on the local server."""

    def __init__(self, system: LocalSystem, name: str):
        self.system = system
        self.database = DATABASE_OWNERS[name]

    def set_secret(self, pending: Login) -> None:
        if _can_log_in(self.system, self.database, pending):
            return  # set by an earlier attempt
        self.system.postgres.set_password(pending.user, pending.password)

    def test_secret(self, pending: Login) -> None:
        if not _can_log_in(self.system, self.database, pending):
            raise LocalSystemError(f"PostgreSQL refuses the pending password of {pending.user}")


def rotate(
    system: LocalSystem,
    name: str,
    pause: float = 0.0,
    progress: Callable[[str], None] | None = None,
    after_step: Callable[[str], None] | None = None,
) -> Login:
    """Rotate credential ``name`` (inventory, billing or rabbitmq); return the new login.

    ``pause``: seconds to wait after ``setSecret`` (the server has the new password, AWSCURRENT still the old
    one); ``after_step(step)`` runs after each step. Both let a test act in the window in which services must
    fall back to AWSPENDING.
    """
    if name not in CREDENTIAL_NAMES:
        raise LocalSystemError(f"unknown credential {name!r}; use one of: {', '.join(CREDENTIAL_NAMES)}")
    def done(step: str, detail: str = "") -> None:
        if progress:
            progress(f"{step:<13} done{detail}")
        if step == "setSecret" and pause:
            time.sleep(pause)
        if after_step:
            after_step(step)

    handler = broker_handler()
    api = system.secrets_api()
    secret_id = secret_name(system.profile, name)
    if api.login(secret_id) is None:
        raise LocalSystemError(f"secret {secret_id} does not exist: is the local system up (make up)?")
    token = str(uuid.uuid4())
    if name == BROKER:
        url = f"http://127.0.0.1:{system.profile.rabbitmq_management_port}"
        if not wait_for(lambda: port_open(system.profile.rabbitmq_management_port), 30):
            raise LocalSystemError(f"RabbitMQ's management API does not answer on {url}")
        management = handler.Management(url)
        # Until credentials.env has the new password, the next start must re-apply it (a rotation interrupted
        # after setSecret would otherwise leave the node with a password nobody has on record).
        system.rabbitmq.forget_applied()
        for step in STEPS:
            handler.rotate({"SecretId": secret_id, "ClientRequestToken": token, "Step": step}, api, management)
            done(step)
    else:
        steps = _DatabaseSteps(system, name)
        handler.create_secret(api, secret_id, token)
        done("createSecret")
        pending = api.login(secret_id, "AWSPENDING")
        assert pending is not None  # just created
        steps.set_secret(pending)
        done("setSecret", f" (ALTER ROLE {pending.user})")
        steps.test_secret(pending)
        done("testSecret")
        handler.finish_secret(api, secret_id, token)
        done("finishSecret")
    # What Secrets Manager does once finishSecret succeeded: the new version is AWSCURRENT only.
    api.update_secret_version_stage(SecretId=secret_id, VersionStage="AWSPENDING", RemoveFromVersionId=token)
    login = api.login(secret_id)
    assert login is not None
    system.record_password(name, login.password)
    return login
