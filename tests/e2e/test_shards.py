"""Sharded billing on the test system (BILLING_SHARDS=2: billing_db and billing_db_shard_1 on the local server).

Customers are real users of the Cognito emulator; each one's shard is ``contract.shards.shard_for`` of the
``sub`` in their token. The databases are checked directly. A shard away is the real thing: the database
refuses new connections (``ALLOW_CONNECTIONS false``) and its open sessions are terminated, undone in a
``finally``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import jwt
import pytest
import requests
from e2e_support import new_marker, order

from contract.services import BILLING
from contract.shards import shard_for
from local_system.credentials import BILLING_SHARD_DATABASES, LOCAL_BILLING_SHARDS
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

SHARD_DATABASES = (BILLING.database, *BILLING_SHARD_DATABASES)


class Customer:
    """A user of the group customers, the shard their orders belong in, and calls to the gateway as them."""

    def __init__(self, gateway: str, token: str):
        self.gateway, self.token = gateway, token
        self.sub = jwt.decode(token, options={"verify_signature": False})["sub"]
        self.shard = shard_for(self.sub, LOCAL_BILLING_SHARDS)
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def post(self, marker: str) -> str:
        """Post one order; its id."""
        response = self.http.post(f"{self.gateway}/api/billing", data=order(marker),
                                  headers={"Content-Type": "application/json"}, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["message_id"]

    def get(self, path: str) -> requests.Response:
        return self.http.get(f"{self.gateway}{path}", timeout=10)


@pytest.fixture(scope="module")
def customers(full_test_system) -> list[Customer]:
    """At least two customers in each shard (new users until both shards have two)."""
    local_system, gateway = full_test_system, full_test_system.profile.url("gateway")
    made: list[Customer] = []
    while min(sum(c.shard == k for c in made) for k in range(LOCAL_BILLING_SHARDS)) < 2 and len(made) < 24:
        username, password = f"shard-{secrets.token_hex(4)}", f"Shard-{secrets.token_urlsafe(10)}-1a"
        local_system.identity.add_user(username, password, ["customers"])
        made.append(Customer(gateway, local_system.identity.token(username, password)))
    assert {c.shard for c in made} == set(range(LOCAL_BILLING_SHARDS))
    return made


def placement(postgres, marker: str, shards: int = LOCAL_BILLING_SHARDS) -> dict[str, list[int]]:
    """{order id: [shard, ...]} of every row of ``marker`` in the first ``shards`` shards (a row stored twice
    shows twice)."""
    found: dict[str, list[int]] = {}
    for shard, database in enumerate(SHARD_DATABASES[:shards]):
        for (message_id,) in postgres.query(database, "SELECT message_id FROM orders WHERE user_id = %s", (marker,)):
            found.setdefault(message_id, []).append(shard)
    return found


@pytest.fixture
def shard_1_away(local_system, postgres) -> Iterator[None]:
    """billing_db_shard_1 refuses connections and its sessions are ended; allowed again afterwards."""
    database = BILLING_SHARD_DATABASES[0]
    admin = local_system.postgres.admin_sql
    admin(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false;\n'
          f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}';\n")
    try:
        yield
    finally:
        admin(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true;\n')


def test_orders_land_once_in_their_users_shard_and_reads_route_there(customers, postgres):
    """Two orders from each customer: each stored exactly once, in the shard of its customer, both shards in
    use; each customer's status reads and list answer from that shard (their orders, and only theirs)."""
    marker = new_marker()
    placed = {c.post(marker): c for c in customers for _ in range(2)}
    wait_until(lambda: len(placement(postgres, marker)) == len(placed), 20, "every order stored")
    rows = placement(postgres, marker)
    assert {order_id: shards for order_id, shards in rows.items()} == {
        order_id: [customer.shard] for order_id, customer in placed.items()
    }
    assert {shards[0] for shards in rows.values()} == {0, 1}
    for customer in customers:
        mine = {order_id for order_id, owner in placed.items() if owner is customer}
        for order_id in mine:
            status = customer.get(f"/api/orders/{order_id}")
            assert (status.status_code, status.json()["status"]) == (200, "stored")
        listed = customer.get("/api/orders?limit=50").json()["orders"]
        assert {item["order_id"] for item in listed if item["user_id"] == marker} == mine


def test_a_shard_away_holds_its_users_orders_until_it_is_back(local_system, customers, postgres, shard_1_away,
                                                               billing_url):
    """Shard 1 away: shard 0's customers' orders are stored meanwhile; shard 1's wait (their status reads 503
    with Retry-After, never 500) and billing stays ready naming shard-1 as failing; once shard 1 is back,
    every waiting order is stored exactly once, in shard 1."""
    marker = new_marker()
    placed = {c.post(marker): c for c in customers for _ in range(2)}
    waiting = {order_id for order_id, c in placed.items() if c.shard == 1}
    wait_until(lambda: len(placement(postgres, marker, 1)) == len(placed) - len(waiting), 20, "shard 0's orders")

    order_id = next(iter(waiting))
    answer = placed[order_id].get(f"/api/orders/{order_id}")
    assert answer.status_code == 503 and int(answer.headers["Retry-After"]) >= 1 and "error" in answer.json()
    ready = requests.get(f"{billing_url}/ready", timeout=5)
    assert ready.status_code == 200
    assert ready.json()["dependencies"]["shard-1"]["ok"] is False
    time.sleep(2)  # a leader's re-drive run while the shard is away: the orders stay parked
    assert set(placement(postgres, marker, 1)) == set(placed) - waiting

    local_system.postgres.admin_sql(f'ALTER DATABASE "{BILLING_SHARD_DATABASES[0]}" WITH ALLOW_CONNECTIONS true;\n')
    wait_until(lambda: len(placement(postgres, marker)) == len(placed), 20, "shard 1's orders after it is back")
    time.sleep(1)
    assert placement(postgres, marker) == {order_id: [customer.shard] for order_id, customer in placed.items()}
    status = placed[order_id].get(f"/api/orders/{order_id}")
    assert (status.status_code, json.loads(status.text)["status"]) == (200, "stored")
