"""The gateway's answers to bad purchases: 400 with the contract's reason, before anything is published (the
broker address here is one nothing listens on, so a publish attempt would be a 503, not a 400)."""

from __future__ import annotations

import pytest

from tests.moto_process import free_port


@pytest.fixture
def client(monkeypatch):
    """A gateway with auth off whose broker is unreachable."""
    for name, value in {
        "AUTH_REQUIRED": "false", "RABBITMQ_URL": f"amqp://127.0.0.1:{free_port()}/",
        "RABBITMQ_USER": "unit", "RABBITMQ_PASSWORD": "unit",
    }.items():
        monkeypatch.setenv(name, value)
    import gateway

    return gateway.create_app().test_client()


@pytest.mark.parametrize(
    ("order", "message"),
    [
        ({"user_id": "3", "movie_id": 7, "total_amount": "25"}, "missing field(s): quantity"),
        ({"user_id": "3", "quantity": 2, "total_amount": "25"}, "missing field(s): movie_id"),
        ({"user_id": "3", "movie_id": 0, "quantity": 2, "total_amount": "25"}, "movie_id must be between 1 and"),
        ({"user_id": "3", "movie_id": 7, "quantity": 1001, "total_amount": "25"}, "quantity must be between 1 and"),
        ({"user_id": "3", "movie_id": 7, "quantity": 2, "number_of_items": 3, "total_amount": "25"},
         "number_of_items must equal quantity (2)"),
    ],
    ids=["no-quantity", "no-movie", "movie-0", "too-many", "items-differ"],
)
def test_a_bad_purchase_is_400_with_the_reason(client, order, message):
    """Each broken purchase rule is a 400 whose error says which rule, never a 503 or a 500."""
    response = client.post("/api/billing", json=order)
    assert response.status_code == 400
    assert message in response.get_json()["error"]
