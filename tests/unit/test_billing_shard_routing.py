"""Billing's shards without servers: shard settings from the environment, routing of principals and saga
events, the all-orders cursor, and ``/ready`` staying 200 while one shard answers."""

from __future__ import annotations

import uuid

import pytest
from flask import Flask

from billing.purchases import ANONYMOUS
from billing.saga_runner import event_shard
from billing.shard_reads import decode_shard_cursor, encode_shard_cursor
from billing.shards import Shards, shard_key
from billing.store import OrderStore
from common.config import ConfigError, DatabaseSettings, shard_database_settings
from common.db import ConnectionPool
from common.web import init_app
from contract import saga
from contract.shards import shard_for

USERS = [str(uuid.UUID(int=n * 104729 + 7)) for n in range(40)]


def _settings(**changes) -> DatabaseSettings:
    base = {"host": "db0.internal", "port": 5432, "name": "billing_db", "user": "billing", "password": "",
            "sslmode": "require", "sslrootcert": None, "pool_size": 2, "connect_timeout": 1}
    return DatabaseSettings(**{**base, **changes})


def _shards(count: int) -> Shards:
    """Stores that never connect unless used (pools open connections lazily)."""
    return Shards([OrderStore(ConnectionPool(_settings(name=f"shard{k}"), "unit")) for k in range(count)])


def test_an_unset_shard_variable_falls_back_to_shard_0(monkeypatch):
    """Shard 1 with only its database name set keeps shard 0's host, port and login (the local system)."""
    monkeypatch.setenv("BILLING_SHARD_1_DATABASE_NAME", "billing_db_shard_1")
    shard = shard_database_settings(_settings(secret_id="billing-secret"), 1)
    assert (shard.host, shard.port, shard.name, shard.secret_id) == (
        "db0.internal", 5432, "billing_db_shard_1", "billing-secret"
    )


def test_a_shard_reads_its_own_host_port_and_secret(monkeypatch):
    """On AWS each shard is its own instance with its own secret (the agreed BILLING_SHARD_<k>_* variables)."""
    for name, value in {"HOST": "db2.internal", "PORT": "6432", "SECRET_ID": "billing-shard-2"}.items():
        monkeypatch.setenv(f"BILLING_SHARD_2_DATABASE_{name}", value)
    shard = shard_database_settings(_settings(secret_id="billing-secret"), 2)
    assert (shard.host, shard.port, shard.name, shard.secret_id) == (
        "db2.internal", 6432, "billing_db", "billing-shard-2"
    )


def test_a_malformed_shard_port_names_its_variable(monkeypatch):
    """A typo in a shard's port fails start-up with the variable's name."""
    monkeypatch.setenv("BILLING_SHARD_1_DATABASE_PORT", "54x2")
    with pytest.raises(ConfigError, match="BILLING_SHARD_1_DATABASE_PORT"):
        shard_database_settings(_settings(), 1)


def test_shard_0_is_the_database_settings_unchanged(monkeypatch):
    """Shard 0 ignores BILLING_SHARD_* variables: it is billing_db exactly as before sharding."""
    monkeypatch.setenv("BILLING_SHARD_0_DATABASE_NAME", "elsewhere")
    base = _settings()
    assert shard_database_settings(base, 0) is base


def test_a_principal_is_routed_by_the_contract_map():
    """Billing picks the shard ``contract.shards.shard_for`` names, so the rebalance command agrees with it."""
    shards = _shards(2)
    assert [shards.index_for(user) for user in USERS] == [shard_for(user, 2) for user in USERS]
    assert {shards.index_for(user) for user in USERS} == {0, 1}


def test_orders_without_a_principal_share_the_anonymous_shard():
    """An order published without a principal (auth off) and its saga events (principal ``anonymous``) meet
    in one shard."""
    shards = _shards(3)
    assert shard_key(None) == shard_key("") == ANONYMOUS
    assert shards.index_for(None) == shard_for(ANONYMOUS, 3)


@pytest.mark.parametrize("event_type", [saga.STOCK_RESERVED, saga.STOCK_REJECTED, saga.INVOICE_READY])
def test_a_saga_event_is_routed_by_the_principal_it_echoes(event_type):
    """stock.reserved, stock.rejected and invoice.ready carry the order's principal back: one shard, no search."""
    shards = _shards(2)
    for user in USERS[:10]:
        event = saga.Event("e1", event_type, "o1", "2026-01-01T00:00:00+00:00", {"principal": {"sub": user}})
        assert event_shard(shards, event) == shard_for(user, 2)


def test_a_saga_event_without_a_principal_has_no_known_shard():
    """An event from an older publisher names no principal: billing must look for the order instead."""
    event = saga.Event("e1", saga.STOCK_RESERVED, "o1", "2026-01-01T00:00:00+00:00", {"movie_id": 1})
    assert event_shard(_shards(2), event) is None


def test_the_all_orders_cursor_round_trips_and_refuses_another_shard_count():
    """A read-all cursor holds every shard's place (a row id, from the newest, nothing left); one made for
    another number of shards, or with a place that is not one, is refused."""
    places = [42, None, "x"]
    assert decode_shard_cursor(encode_shard_cursor(places), 3) == places
    with pytest.raises(ValueError, match="not one this API handed out"):
        decode_shard_cursor(encode_shard_cursor(places), 2)
    with pytest.raises(ValueError, match="not one this API handed out"):
        decode_shard_cursor(encode_shard_cursor([42, "y", None]), 3)


def _ready(checks: dict, any_of: tuple[str, ...]):
    app = Flask("ready-test")

    def failing() -> None:
        raise RuntimeError("cannot connect")

    init_app(app, "billing", {name: (lambda: None) if ok else failing for name, ok in checks.items()}, any_of=any_of)
    response = app.test_client().get("/ready")
    return response.status_code, response.get_json()


def test_ready_stays_200_while_one_shard_answers():
    """One shard away must not make ECS replace every billing task: 200, the shard listed as not ok."""
    status, body = _ready({"shard-0": True, "shard-1": False, "broker": True}, ("shard-0", "shard-1"))
    assert status == 200
    assert body["dependencies"]["shard-1"]["ok"] is False and body["dependencies"]["shard-0"]["ok"] is True
    assert "shard-1" in body["degraded"]


def test_ready_is_503_when_no_shard_answers():
    """Every shard away: billing can store nothing, so it is not ready."""
    status, body = _ready({"shard-0": False, "shard-1": False, "broker": True}, ("shard-0", "shard-1"))
    assert status == 503 and set(body["failing"]) == {"shard-0", "shard-1"}


def test_ready_is_503_when_a_required_dependency_fails_whatever_the_shards():
    """The group only relaxes its own members: the broker away is still 503."""
    status, body = _ready({"shard-0": True, "shard-1": True, "broker": False}, ("shard-0", "shard-1"))
    assert status == 503 and set(body["failing"]) == {"broker"}
