# ruff: noqa: F811 - the fixtures of billing_saga_support are imported, then named as test arguments
"""Reading purchases back: billing's ``/orders/<id>`` and ``/orders`` with the saga status, billing's
``/orders/<id>/invoice`` (302 to a presigned GET, checked by downloading it from the moto S3 server), and the
gateway's ``GET /api/orders/<id>/invoice`` passing that 302 through from a real billing app on a real port."""

from __future__ import annotations

import secrets
import threading
import urllib.request
from collections.abc import Iterator

import boto3
import pytest
from werkzeug.serving import make_server

from billing import create_app
from billing.saga import handle_event
from billing.store import OrderRecord
from common.orders import parse_order
from contract import invoices
from contract.messaging import HTTP_PRINCIPAL_SUB, HTTP_READ_ALL
from tests.integration.billing_saga_support import (  # noqa: F401 - billing_env, store, no_billing_service: fixtures
    MOVIE,
    apply,
    billing_env,
    drop_outbox_after,
    invoice_ready,
    new_owner,
    no_billing_service,
    outbox_mark,
    purchase_body,
    rejected,
    reserved,
    store,
    store_purchase,
)

# A running billing (left by an e2e test) would relay the outbox rows these tests read: stopped first.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_billing_service", "invoices_off")]


@pytest.fixture
def invoices_off(monkeypatch) -> None:
    """Invoices off unless a test turns them on (INVOICES_BUCKET)."""
    monkeypatch.setenv("INVOICES_BUCKET", "")

PDF = b"%PDF-1.7 an invoice"


@pytest.fixture
def invoices_bucket(billing_env, s3_emulator, monkeypatch) -> str:
    """A bucket of the moto S3 server as INVOICES_BUCKET (billing presigns against that endpoint)."""
    for name, value in {"AWS_ENDPOINT_URL_S3": s3_emulator, "AWS_REGION": "eu-west-1",
                        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    name = f"invoices-{secrets.token_hex(4)}"
    _s3(s3_emulator).create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    monkeypatch.setenv("INVOICES_BUCKET", name)
    return name


def _s3(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name="eu-west-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _get(client, path: str, sub: str | None, read_all: bool = False):
    headers = {} if sub is None else {HTTP_PRINCIPAL_SUB: sub, HTTP_READ_ALL: "true" if read_all else "false"}
    return client.get(path, headers=headers)


def _confirmed_with_invoice(store, owner, s3_endpoint: str | None = None, bucket: str | None = None) -> str:
    """A confirmed purchase whose invoice is recorded (and, given a bucket, stored there)."""
    order_id = store_purchase(store, owner)
    apply(store, handle_event, reserved(order_id), invoice_ready(order_id))
    if bucket:
        _s3(s3_endpoint).put_object(Bucket=bucket, Key=invoices.invoice_key(order_id), Body=PDF,
                                    ContentType=invoices.CONTENT_TYPE)
    return order_id


# -- billing's reads -------------------------------------------------------------------------------------------
def test_a_pending_purchase_reads_pending_with_its_fields(store, billing_env):
    """200 pending with movie, quantity and total, no unit price yet, and Retry-After (worth asking again)."""
    owner = new_owner()
    order_id = store_purchase(store, owner, movie_id=MOVIE + 1, quantity=3, total="30.00")
    response = _get(create_app().test_client(), f"/orders/{order_id}", owner.sub)
    body = response.get_json()
    assert response.status_code == 200 and int(response.headers["Retry-After"]) >= 1
    assert (body["status"], body["movie_id"], body["quantity"], body["total_amount"], body["unit_price"]) == (
        "pending", MOVIE + 1, 3, "30.00", None
    )
    assert "invoice_url" not in body


def test_a_confirmed_purchase_reads_its_unit_price_then_its_invoice_url(store, billing_env):
    """Confirmed: the unit price inventory reserved at; invoice_url appears once invoice.ready was recorded."""
    owner = new_owner()
    order_id = store_purchase(store, owner)
    client = create_app().test_client()
    apply(store, handle_event, reserved(order_id, "12.50"))
    body = _get(client, f"/orders/{order_id}", owner.sub).get_json()
    assert (body["status"], body["unit_price"], "invoice_url" in body) == ("confirmed", "12.50", False)
    apply(store, handle_event, invoice_ready(order_id))
    body = _get(client, f"/orders/{order_id}", owner.sub).get_json()
    assert body["invoice_url"] == f"/api/orders/{order_id}/invoice"


def test_a_rejected_purchase_reads_rejected_with_the_reason(store, billing_env):
    """stock.rejected's reason is what the buyer reads."""
    owner = new_owner()
    order_id = store_purchase(store, owner)
    apply(store, handle_event, rejected(order_id, "movie 7 is not for sale"))
    body = _get(create_app().test_client(), f"/orders/{order_id}", owner.sub).get_json()
    assert (body["status"], body["reason"]) == ("rejected", "movie 7 is not for sale")


def test_the_order_list_shows_purchases_with_their_status_next_to_classic_orders(store, billing_env):
    """GET /orders: a purchase with its saga status, a classic order as stored, newest first."""
    owner = new_owner()
    classic = parse_order(b'{"user_id": "it", "number_of_items": 2, "total_amount": "5"}')
    store.insert([OrderRecord(classic, secrets.token_hex(32), "r", owner)])
    purchase_id = store_purchase(store, owner)
    orders = _get(create_app().test_client(), "/orders", owner.sub).get_json()["orders"]
    assert [(o["status"], o.get("movie_id")) for o in orders] == [("pending", MOVIE), ("stored", None)]
    assert orders[0]["order_id"] == purchase_id


# -- billing's invoice download --------------------------------------------------------------------------------
def test_invoice_download_redirects_to_a_presigned_get_of_the_pdf(store, s3_emulator, invoices_bucket):
    """302 to a presigned GET valid DOWNLOAD_EXPIRES_SECONDS; following it downloads the stored PDF."""
    owner = new_owner()
    order_id = _confirmed_with_invoice(store, owner, s3_emulator, invoices_bucket)
    response = _get(create_app().test_client(), f"/orders/{order_id}/invoice", owner.sub)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert f"X-Amz-Expires={invoices.DOWNLOAD_EXPIRES_SECONDS}" in location
    assert response.headers["Cache-Control"] == "no-store"
    with urllib.request.urlopen(location, timeout=10) as download:  # noqa: S310 - the moto server's URL
        assert (download.read(), download.headers["Content-Type"]) == (PDF, invoices.CONTENT_TYPE)


def test_a_caller_that_accepts_json_gets_the_presigned_url_as_json(store, s3_emulator, invoices_bucket):
    """Accept: application/json (the web front end's fetch, which cannot follow a cross-origin redirect): 200 with
    the same kind of presigned URL and its lifetime, which downloads the PDF."""
    owner = new_owner()
    order_id = _confirmed_with_invoice(store, owner, s3_emulator, invoices_bucket)
    headers = {HTTP_PRINCIPAL_SUB: owner.sub, HTTP_READ_ALL: "false", "Accept": "application/json"}
    response = create_app().test_client().get(f"/orders/{order_id}/invoice", headers=headers)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["expires_in"] == invoices.DOWNLOAD_EXPIRES_SECONDS and "X-Amz-Signature=" in body["url"]
    with urllib.request.urlopen(body["url"], timeout=10) as download:  # noqa: S310 - the moto server's URL
        assert download.read() == PDF


def test_invoice_is_404_until_it_is_ready(store, invoices_bucket):
    """A confirmed purchase without invoice.ready yet (and a pending one): 404 saying so."""
    owner = new_owner()
    order_id = store_purchase(store, owner)
    client = create_app().test_client()
    response = _get(client, f"/orders/{order_id}/invoice", owner.sub)
    assert (response.status_code, "no invoice for this order yet" in response.get_json()["error"]) == (404, True)
    apply(store, handle_event, reserved(order_id))
    assert _get(client, f"/orders/{order_id}/invoice", owner.sub).status_code == 404


def test_someone_elses_invoice_is_404_unless_reading_all(store, s3_emulator, invoices_bucket):
    """Another reader gets "no such order"; billing.read gets the redirect."""
    order_id = _confirmed_with_invoice(store, new_owner(), s3_emulator, invoices_bucket)
    client = create_app().test_client()
    response = _get(client, f"/orders/{order_id}/invoice", new_owner().sub)
    assert (response.status_code, response.get_json()["error"]) == (404, "no such order")
    assert _get(client, f"/orders/{order_id}/invoice", new_owner().sub, read_all=True).status_code == 302


def test_invoice_is_404_when_invoices_are_not_configured(store, billing_env):
    """INVOICES_BUCKET empty: 404 with a clear message, even for an order whose invoice is recorded."""
    owner = new_owner()
    order_id = _confirmed_with_invoice(store, owner)
    response = _get(create_app().test_client(), f"/orders/{order_id}/invoice", owner.sub)
    assert (response.status_code, response.get_json()["error"]) == (404, "invoices are not configured")


def test_invoice_without_the_principal_header_is_400(billing_env):
    """Only the gateway calls billing, always with X-Principal-Sub."""
    assert _get(create_app().test_client(), f"/orders/{secrets.token_hex(32)}/invoice", None).status_code == 400


# -- through the gateway ---------------------------------------------------------------------------------------
@pytest.fixture
def billing_server(store, invoices_bucket) -> Iterator[str]:
    """The billing app served on a free local port (its HTTP side only); its URL."""
    server = make_server("127.0.0.1", 0, create_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture
def gateway_app(billing_server, monkeypatch):
    """A gateway with auth off (ids signed for the anonymous caller "") forwarding to that billing."""
    import gateway

    monkeypatch.setenv("BILLING_URL", billing_server)
    monkeypatch.setenv("AUTH_REQUIRED", "false")
    monkeypatch.setenv("ORDER_ID_KEY", secrets.token_hex(32))
    return gateway.create_app()


def test_the_gateway_passes_the_invoice_redirect_through(gateway_app, store, s3_emulator, invoices_bucket):
    """GET /api/orders/<id>/invoice: the id the gateway issued reaches billing, and its 302 and Location come
    back unchanged (the presigned URL downloads the PDF)."""
    from gateway.parts import GATEWAY

    order_id = GATEWAY.of(gateway_app).order_ids.issue("")
    assert store.insert([OrderRecord(parse_order(purchase_body()), order_id, "r", None)]) == [True]
    apply(store, handle_event, reserved(order_id), invoice_ready(order_id))
    _s3(s3_emulator).put_object(Bucket=invoices_bucket, Key=invoices.invoice_key(order_id), Body=PDF)
    response = gateway_app.test_client().get(f"/api/orders/{order_id}/invoice")
    assert response.status_code == 302
    with urllib.request.urlopen(response.headers["Location"], timeout=10) as download:  # noqa: S310 - moto's URL
        assert download.read() == PDF


def test_the_gateway_refuses_an_invoice_id_it_never_issued(gateway_app):
    """A well-formed id the gateway did not sign is 404 before billing is asked; a malformed one is 400."""
    client = gateway_app.test_client()
    assert client.get(f"/api/orders/{secrets.token_hex(32)}/invoice").status_code == 404
    assert client.get("/api/orders/not-an-id/invoice").status_code == 400
