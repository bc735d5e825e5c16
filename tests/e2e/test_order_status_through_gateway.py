"""Order status end to end (asynchronous request-reply): POST /api/billing, then follow GET /api/orders/<id>.

Real tokens from the local Cognito emulator: the demo user (group admins: billing.read, reads every order)
and fresh users of the group customers (billing.write only: their own orders).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time

import jwt
import pika
import pytest
from e2e_support import new_marker, order

from contract.messaging import BILLING_QUEUE, PRINCIPAL_SUB
from contract.services import BILLING
from gateway.order_ids import OrderIdSigner
from local_system.credentials import BILLING_SHARD_DATABASES

pytestmark = pytest.mark.e2e


class Caller:
    """One principal: its token's ``sub`` and an authenticated way to call the gateway."""

    def __init__(self, http, gateway: str, token: str):
        self.http, self.gateway, self.token = http, gateway, token
        self.sub = jwt.decode(token, options={"verify_signature": False})["sub"]

    def get(self, path: str, **kwargs):
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.http.get(f"{self.gateway}{path}", headers=headers, **kwargs)

    def post_order(self, body: str):
        return self.http.post(
            f"{self.gateway}/api/billing",
            data=body,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )


@pytest.fixture
def new_customer(local_system, gateway, anonymous_http):
    """Makes a new user of the group customers (billing.write only) and returns a Caller for it."""

    def make() -> Caller:
        username, password = f"customer-{secrets.token_hex(4)}", f"Customer-{secrets.token_urlsafe(10)}-1a"
        local_system.identity.add_user(username, password, ["customers"])
        return Caller(anonymous_http, gateway, local_system.identity.token(username, password))

    return make


@pytest.fixture
def admin(gateway, anonymous_http, access_token) -> Caller:
    """The demo user (group admins: billing.read too)."""
    return Caller(anonymous_http, gateway, access_token)


def wait_for_status(caller: Caller, order_url: str, status: str, timeout: float = 20.0):
    """Poll the order's URL until it reports ``status`` (or the timeout passes); return the last answer."""
    deadline = time.monotonic() + timeout
    response = caller.get(order_url)
    while response.json().get("status") != status and time.monotonic() < deadline:
        time.sleep(0.2)
        response = caller.get(order_url)
    return response


def test_post_keeps_its_answer_and_adds_the_order_url(new_customer):
    """POST /api/billing still answers 200 "Message posted" with the message id, plus order_url and Location."""
    response = new_customer().post_order(order(new_marker()))
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "Message posted"
    assert body["order_url"] == f"/api/orders/{body['message_id']}"
    assert response.headers["Location"] == body["order_url"]


def test_status_moves_from_queued_to_stored(new_customer, postgres):
    """While billing cannot write (orders table locked) the order reads 202 queued with Retry-After; once it
    can, 200 stored with the order's fields."""
    customer = new_customer()
    marker = new_marker()
    with contextlib.ExitStack() as stack:
        for database in (BILLING.database, *BILLING_SHARD_DATABASES):  # the customer's shard is among them
            lock = stack.enter_context(postgres.connect(database, autocommit=False))
            stack.callback(lock.rollback)
            with lock.cursor() as cur:
                # Blocks billing's INSERT, not its SELECTs: the order stays unstored while we look.
                cur.execute("LOCK TABLE orders IN EXCLUSIVE MODE")
        url = customer.post_order(order(marker, 3, "12.5")).json()["order_url"]
        queued = customer.get(url)
    assert queued.status_code == 202
    assert queued.json()["status"] == "queued"
    assert int(queued.headers["Retry-After"]) >= 1
    stored = wait_for_status(customer, url, "stored")
    assert stored.status_code == 200
    body = stored.json()
    assert (body["user_id"], body["number_of_items"], body["total_amount"]) == (marker, 3, "12.50")
    assert body["stored_at"]


def test_poison_order_status_is_rejected(new_customer, local_system, amqp, rabbitmq):
    """An order billing can never store (published past the gateway's validation) reads rejected, with why."""
    customer = new_customer()
    signer = OrderIdSigner.from_setting(local_system.service_env("gateway")["ORDER_ID_KEY"], auth_required=True)
    order_id = signer.issue(customer.sub)
    poison = json.dumps({"user_id": new_marker(), "number_of_items": "-3", "total_amount": "1"}).encode()
    amqp.basic_publish(
        "",
        BILLING_QUEUE.name,
        poison,
        pika.BasicProperties(
            message_id=order_id, delivery_mode=pika.DeliveryMode.Persistent, headers={PRINCIPAL_SUB: customer.sub}
        ),
    )
    response = wait_for_status(customer, f"/api/orders/{order_id}", "rejected")
    _take_dead_letter(rabbitmq, order_id)  # leave the dead-letter queue as it was, for the tests that read it
    assert response.status_code == 200
    assert "number_of_items" in response.json()["reason"]


def _take_dead_letter(rabbitmq, message_id: str, timeout: float = 10.0) -> None:
    """Acknowledge (remove) the dead letter with ``message_id``. Others are taken unacknowledged and go back
    unchanged when the channel closes (a requeue would put them back at the head, to be taken again)."""
    deadline = time.monotonic() + timeout
    with rabbitmq.channel() as channel:
        while time.monotonic() < deadline:
            method, properties, _ = channel.basic_get(BILLING_QUEUE.dead_letter_queue, auto_ack=False)
            if method is None:
                time.sleep(0.2)
            elif properties.message_id == message_id:
                channel.basic_ack(method.delivery_tag)
                return


def test_made_up_order_id_is_404(admin):
    """A well-formed id the gateway never issued is 404, even for a reader of all orders (never 'queued')."""
    response = admin.get(f"/api/orders/{secrets.token_hex(32)}")
    assert response.status_code == 404
    assert response.json()["error"]


@pytest.mark.parametrize("bad", ["123", "Z" * 64, "0" * 63])
def test_malformed_order_id_is_400(admin, bad):
    """Something that is not an order id at all is 400 with a JSON error."""
    response = admin.get(f"/api/orders/{bad}")
    assert response.status_code == 400
    assert response.json()["error"]


def test_someone_elses_order_is_404(new_customer):
    """A customer asking about another customer's order gets 404, the answer for a made-up id."""
    alice, bob = new_customer(), new_customer()
    url = alice.post_order(order(new_marker())).json()["order_url"]
    assert wait_for_status(alice, url, "stored").status_code == 200
    assert bob.get(url).status_code == 404


def test_admin_reads_any_order(new_customer, admin):
    """A principal with billing.read reads a customer's order."""
    customer = new_customer()
    marker = new_marker()
    url = customer.post_order(order(marker)).json()["order_url"]
    response = wait_for_status(admin, url, "stored")
    assert response.status_code == 200
    assert response.json()["user_id"] == marker


def test_list_is_own_orders_newest_first_in_cursor_pages(new_customer):
    """GET /api/orders pages the caller's own stored orders newest first; the cursor leads to the rest."""
    customer, other = new_customer(), new_customer()
    other.post_order(order(new_marker()))
    ids = []
    for items in (1, 2, 3):
        url = customer.post_order(order(new_marker(), items)).json()["order_url"]
        assert wait_for_status(customer, url, "stored").status_code == 200
        ids.append(url.rsplit("/", 1)[1])
    first = customer.get("/api/orders", params={"limit": 2}).json()
    assert [o["order_id"] for o in first["orders"]] == [ids[2], ids[1]]
    second = customer.get("/api/orders", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [o["order_id"] for o in second["orders"]] == [ids[0]]
    assert second["next_cursor"] is None


def test_caller_cannot_claim_another_principal(new_customer):
    """An X-Principal-Sub sent by the caller is dropped: the list still holds only the caller's own orders."""
    alice, bob = new_customer(), new_customer()
    url = alice.post_order(order(new_marker())).json()["order_url"]
    assert wait_for_status(alice, url, "stored").status_code == 200
    response = bob.get("/api/orders", headers={"X-Principal-Sub": alice.sub, "X-Principal-Read-All": "true"})
    assert response.status_code == 200
    assert response.json()["orders"] == []


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "101"}, {"limit": "x"}, {"cursor": "nonsense"}])
def test_bad_limit_or_cursor_is_400(new_customer, params):
    """A limit outside 1..100 or a cursor the API did not hand out is 400 with a JSON error."""
    response = new_customer().get("/api/orders", params=params)
    assert response.status_code == 400
    assert response.json()["error"]


def test_viewer_may_not_read_orders(local_system, gateway, anonymous_http):
    """A principal without billing.write or billing.read gets 403 on the order reads."""
    username, password = f"viewer-{secrets.token_hex(4)}", f"Viewer-{secrets.token_urlsafe(10)}-1a"
    local_system.identity.add_user(username, password, ["viewers"])
    viewer = Caller(anonymous_http, gateway, local_system.identity.token(username, password))
    assert viewer.get("/api/orders").status_code == 403
