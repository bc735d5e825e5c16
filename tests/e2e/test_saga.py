"""The purchase saga end to end on the test system: gateway -> billing (pending, order.placed) -> inventory
(reserve, stock.reserved/rejected) -> billing (confirmed/rejected, order.confirmed) -> invoicer (PDF in S3,
invoice.ready) -> billing; crashes of inventory and billing in the middle; replays; the claim check.

Every test makes movies of its own (fresh ids), so the stock it counts is only its purchases'.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pika
import pytest
import requests
from pypdf import PdfReader

from common.db import transaction
from common.outbox import add_event
from contract import claim_check as CC
from contract import saga
from contract.messaging import BILLING_QUEUE
from contract.services import BILLING, INVENTORY
from tests.e2e.e2e_support import kill_9
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

FINAL = ("confirmed", "rejected")
#: How long a purchase may take to settle on a quiet test system (seconds; generous for 2 loaded cores).
SETTLE = 60.0


def new_movie(gateway: str, http, stock: int | None, price: str | None = "4.50") -> int:
    """A movie of this test with ``stock`` copies at ``price``; its id."""
    body = {"title": f"Saga {uuid.uuid4().hex[:8]}", "stock": stock, "price": price}
    created = http.post(f"{gateway}/api/movies", json=body)
    assert created.status_code == 201, created.text
    return created.json()["id"]


def stock_of(gateway: str, http, movie_id: int) -> int | None:
    """The movie's stock as inventory answers it."""
    answer = http.get(f"{gateway}/api/movies/{movie_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()["stock"]


def purchase(gateway: str, http, movie_id: int, quantity: int, unit_price: str = "4.50") -> str:
    """Post a purchase; the order's status URL (absolute). Retries a 503 (a broker or billing restart)."""
    body = {"user_id": "e2e-saga", "movie_id": movie_id, "quantity": quantity,
            "total_amount": str(Decimal(unit_price) * quantity)}
    for _ in range(100):
        try:
            answer = http.post(f"{gateway}/api/billing", json=body)
        except requests.ConnectionError:
            answer = None
        if answer is not None and answer.status_code == 200:
            return f"{gateway}{answer.json()['order_url']}"
        assert answer is None or answer.status_code == 503, answer.text
        time.sleep(0.2)
    pytest.fail("the gateway did not accept the purchase")


def status(http, order_url: str) -> dict:
    """The order's status document (a 202 'queued' included); {} while billing is away."""
    try:
        answer = http.get(order_url)
    except requests.ConnectionError:
        return {}
    return answer.json() if answer.status_code in (200, 202) else {}


def settled(http, order_url: str, timeout: float = SETTLE) -> dict:
    """The order once it is confirmed or rejected."""
    return wait_until(lambda: (found := status(http, order_url)).get("status") in FINAL and found, timeout,
                    f"{order_url} to be confirmed or rejected")


# -- the happy and the unhappy path --------------------------------------------------------------------------
def test_a_purchase_beyond_the_stock_is_rejected_and_one_within_it_confirmed(gateway, http):
    """Stock 2: buying 3 is rejected with a reason and leaves the stock at 2; buying 2 is confirmed, stock 0."""
    movie = new_movie(gateway, http, stock=2)
    too_many = settled(http, purchase(gateway, http, movie, 3))
    assert too_many["status"] == "rejected" and "stock" in too_many["reason"]
    assert stock_of(gateway, http, movie) == 2

    enough = settled(http, purchase(gateway, http, movie, 2))
    assert enough["status"] == "confirmed", enough
    assert (enough["movie_id"], enough["quantity"], enough["unit_price"], enough["total_amount"]) == (
        movie, 2, "4.50", "9.00")
    assert stock_of(gateway, http, movie) == 0


def test_a_purchase_with_the_wrong_total_is_rejected(gateway, http):
    """total_amount must be price x quantity at the time of reservation: a mismatch is a rejection naming it,
    not a 500, and the stock is untouched."""
    movie = new_movie(gateway, http, stock=5, price="4.50")
    order = settled(http, purchase(gateway, http, movie, 2, unit_price="4.00"))
    assert order["status"] == "rejected" and "price" in order["reason"]
    assert stock_of(gateway, http, movie) == 5


def test_twenty_concurrent_purchases_on_stock_ten_confirm_exactly_ten(gateway, http):
    """20 purchases of 1 at once on stock 10: exactly 10 confirmed, 10 rejected, stock 0, none left pending."""
    movie = new_movie(gateway, http, stock=10)
    with ThreadPoolExecutor(max_workers=20) as pool:
        urls = list(pool.map(lambda _: purchase(gateway, http, movie, 1), range(20)))
    outcomes = [settled(http, url)["status"] for url in urls]
    assert sorted(outcomes) == ["confirmed"] * 10 + ["rejected"] * 10
    assert stock_of(gateway, http, movie) == 0


# -- crashes in the middle of a stream ----------------------------------------------------------------------
def stream_with_a_crash(gateway, http, local_system, victim: str, held_back) -> None:
    """30 purchases of 1 on stock 20, posted one after another; ``victim`` is killed -9 after the 10th and
    started again after the 20th. ``held_back(urls)`` checks, just before the restart, that the purchases posted
    during the outage are waiting (the crash really fell mid-stream). Afterwards every order is confirmed or
    rejected and stock + confirmed = 20."""
    movie = new_movie(gateway, http, stock=20)
    urls: list[str] = []
    for number in range(30):
        if number == 10:
            kill_9(local_system.service(victim))
        if number == 20:
            held_back(urls[10:])
            local_system.start_service(victim)
        urls.append(purchase(gateway, http, movie, 1))
    outcomes = [settled(http, url, timeout=2 * SETTLE) for url in urls]
    confirmed = sum(order["quantity"] for order in outcomes if order["status"] == "confirmed")
    assert stock_of(gateway, http, movie) + confirmed == 20
    assert confirmed == 20  # 30 asked for 20 copies: every copy sold, none twice


def test_inventory_killed_mid_stream_ends_consistent(gateway, http, local_system):
    """kill -9 of inventory while purchases flow: those placed meanwhile stay pending (nothing can reserve them);
    after its restart nothing is pending or sold twice."""

    def pending(urls: list[str]) -> None:
        # Billing stores each (queued -> pending) but nothing can reserve it: all pending, none settled.
        wait_until(lambda: all(status(http, url).get("status") == "pending" for url in urls), 15,
                   "the purchases placed during the outage to be pending")

    try:
        stream_with_a_crash(gateway, http, local_system, INVENTORY.name, pending)
    finally:
        local_system.start_service(INVENTORY.name)


def test_billing_killed_mid_stream_ends_consistent(gateway, http, local_system, rabbitmq):
    """kill -9 of billing while purchases flow: those placed meanwhile wait in the billing queue; after its
    restart nothing is pending or sold twice."""

    def queued(urls: list[str]) -> None:
        assert rabbitmq.message_count(BILLING_QUEUE.name) >= len(urls)

    try:
        stream_with_a_crash(gateway, http, local_system, BILLING.name, queued)
    finally:
        local_system.start_service(BILLING.name)


# -- replays -------------------------------------------------------------------------------------------------
class Tap:
    """A queue of the test bound to every saga event: what the services published, to replay or inspect."""

    def __init__(self, rabbitmq):
        self.name = f"e2e-saga-tap-{uuid.uuid4().hex[:8]}"
        self._rabbitmq = rabbitmq
        with rabbitmq.channel() as channel:
            channel.exchange_declare(saga.EXCHANGE, saga.EXCHANGE_TYPE, durable=True)
            channel.queue_declare(self.name, exclusive=False, auto_delete=False)
            channel.queue_bind(self.name, saga.EXCHANGE, "#")

    def messages(self) -> list[tuple[pika.BasicProperties, bytes]]:
        """Everything the tap holds now (taken off it)."""
        found = []
        with self._rabbitmq.channel() as channel:
            while True:
                method, properties, body = channel.basic_get(self.name, auto_ack=True)
                if method is None:
                    return found
                found.append((properties, body))

    def close(self) -> None:
        self._rabbitmq.delete(self.name)


@pytest.fixture
def tap(rabbitmq, local_system):
    """A tap on the saga's exchange for one test."""
    made = Tap(rabbitmq)
    yield made
    made.close()


def test_replayed_events_change_nothing(gateway, http, rabbitmq, tap):
    """Every event of a confirmed purchase published a second time (same ids) changes no stock and no status,
    and nothing is dead-lettered."""
    movie = new_movie(gateway, http, stock=3)
    url = purchase(gateway, http, movie, 2)
    before = settled(http, url)
    assert before["status"] == "confirmed"
    events = wait_until(lambda: tap.messages() or None, 10, "the purchase's events on the tap")
    dead_before = {q.dead_letter_queue: rabbitmq.message_count(q.dead_letter_queue) for q in saga.SAGA_QUEUES}
    with rabbitmq.channel() as channel:
        channel.confirm_delivery()
        for properties, body in events:
            channel.basic_publish(saga.EXCHANGE, properties.type, body, properties, mandatory=True)
    # A later purchase passes through the same queues after the replays: once it settles, they were handled.
    settled(http, purchase(gateway, http, new_movie(gateway, http, stock=1), 1))
    wait_until(lambda: all(rabbitmq.message_count(q.name) == 0 for q in saga.SAGA_QUEUES), 20, "empty saga queues")
    time.sleep(1)
    assert stock_of(gateway, http, movie) == 1
    after = status(http, url)
    assert (after["status"], after["quantity"]) == ("confirmed", 2)
    assert {q.dead_letter_queue: rabbitmq.message_count(q.dead_letter_queue) for q in saga.SAGA_QUEUES} == dead_before


# -- the invoice ----------------------------------------------------------------------------------------------
def test_the_invoice_of_a_confirmed_order_downloads_as_a_pdf_naming_the_order(gateway, http):
    """A confirmed order gets an invoice: GET .../invoice answers 302 to a presigned URL, which serves a valid
    PDF naming the order; a rejected order has none (404)."""
    movie = new_movie(gateway, http, stock=1, price="12.25")
    url = purchase(gateway, http, movie, 1, unit_price="12.25")
    assert settled(http, url)["status"] == "confirmed"
    order_id = url.rsplit("/", 1)[1]
    found = wait_until(lambda: status(http, url).get("invoice_url"), SETTLE, "the invoice")
    assert found == f"/api/orders/{order_id}/invoice"
    answer = http.get(f"{gateway}{found}", allow_redirects=False)
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=300" in location
    document = requests.get(location, timeout=10)  # no bearer token: the URL is the permission
    assert document.status_code == 200 and document.content.startswith(b"%PDF-")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(document.content)).pages)
    assert order_id in text.replace("\n", "") and "12.25" in text

    rejected = purchase(gateway, http, movie, 1, unit_price="12.25")  # the one copy is sold
    assert settled(http, rejected)["status"] == "rejected"
    missing = http.get(f"{rejected}/invoice", allow_redirects=False)
    assert missing.status_code == 404 and "error" in missing.json()


# -- the claim check ------------------------------------------------------------------------------------------
def test_a_100_kib_event_travels_by_claim_check(postgres, local_system, tap):
    """A 100 KiB event committed to billing's outbox is published as a claim check (a small reference with the
    claim-check header, the body in S3) and inventory redeems and applies it (its inbox records the event)."""
    event = saga.new_event(saga.ORDER_CANCELLED, f"e2e-claim-{uuid.uuid4().hex[:8]}",
                           {"movie_id": 1, "quantity": 1, "reason": "e2e", "note": "c" * 100 * 1024})
    with postgres.connect(BILLING.database, autocommit=False) as conn, transaction(conn) as cur:
        add_event(cur, event)
    [(properties, wire)] = wait_until(
        lambda: [m for m in tap.messages() if m[0].message_id == event.event_id] or None, 20, "the claim check")
    assert properties.headers[CC.HEADER] == CC.HEADER_VALUE and len(wire) < 1024
    assert json.loads(wire)["claim_check"]["size"] == len(event.body())
    wait_until(
        lambda: postgres.query(INVENTORY.database, "SELECT 1 FROM processed_events WHERE event_id = %s",
                               (event.event_id,)),
        20, "inventory to apply the large event",
    )
