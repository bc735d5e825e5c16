"""Stock and price on movies, in-process (Flask test client) against the real test PostgreSQL: what the API
accepts and answers, what it refuses, the database's CHECK on stock, and rows from before the migration."""

from __future__ import annotations

from decimal import Decimal

import psycopg2
import pytest
from psycopg2 import errors

from common.db import ConnectionPool, Schema
from contract.limits import MAX_PRICE, MAX_STOCK
from inventory import create_app
from inventory.db import MIGRATIONS, STORE

pytestmark = pytest.mark.integration

#: The migration that added stock and price (1-based, as in schema_migrations).
SALE_MIGRATION = 3
#: A schema of its own in movies_db for the upgrade test, so the shared movies table is never rebuilt.
UPGRADE_SCHEMA = "inventory_upgrade_check"



@pytest.fixture
def client(inventory_settings, postgres):
    """A test client of a fresh inventory app on an empty, migrated movies table."""
    app = create_app(inventory_settings)
    STORE.of(app).check()
    postgres.truncate("movies_db", "movies")
    return app.test_client()


def _create(client, **fields) -> dict:
    response = client.post("/api/movies", json={"title": "Stalker", **fields})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _stored(postgres, movie_id: int) -> tuple:
    """(stock, price) as PostgreSQL holds them."""
    return postgres.query("movies_db", "SELECT stock, price FROM movies WHERE id = %s", (movie_id,))[0]


def test_created_movie_answers_stock_and_price_as_stored(client, postgres):
    """A movie created with stock 3 and price "19.9" answers stock 3 and price "19.90" on create, read and list,
    and PostgreSQL holds exactly 3 and 19.90."""
    movie = _create(client, stock=3, price="19.9")
    assert (movie["stock"], movie["price"]) == (3, "19.90")
    assert client.get(f"/api/movies/{movie['id']}").get_json() == movie
    assert client.get("/api/movies").get_json() == [movie]
    assert _stored(postgres, movie["id"]) == (3, Decimal("19.90"))


def test_price_as_a_json_number_is_exact(client, postgres):
    """19.99 sent as a JSON number is stored as exactly 19.99 (read as a decimal, never a binary float)."""
    movie = _create(client, price=19.99)
    assert movie["price"] == "19.99"
    assert _stored(postgres, movie["id"])[1] == Decimal("19.99")


@pytest.mark.parametrize(
    ("sent", "answered"),
    [(0, "0.00"), ("0", "0.00"), (" 7.5 ", "7.50"), (12, "12.00"), (str(MAX_PRICE), str(MAX_PRICE))],
)
def test_prices_at_the_edges_are_accepted(client, sent, answered):
    """Zero, an integer, a padded string and the largest price are valid, answered with two decimals."""
    assert _create(client, price=sent)["price"] == answered


def test_largest_stock_and_zero_are_accepted(client):
    """Stock 0 (sold out, still for sale) and the largest stock are stored as sent."""
    assert _create(client, stock=0)["stock"] == 0
    assert _create(client, stock=MAX_STOCK)["stock"] == MAX_STOCK


def test_movie_without_them_answers_null_for_both(client, postgres):
    """A movie created the old way (title and description only) answers stock and price null."""
    movie = _create(client, description="1979")
    assert (movie["stock"], movie["price"]) == (None, None)
    assert _stored(postgres, movie["id"]) == (None, None)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"price": True}, "price must be a number"),
        ({"price": "abc"}, "price must be a decimal number"),
        ({"price": "1e3"}, "price must be a decimal number"),
        ({"price": "NaN"}, "price must be a decimal number"),
        ({"price": -1}, "price must not be negative"),
        ({"price": 1.005}, "price must have at most two decimal places"),
        ({"price": "0.001"}, "price must have at most two decimal places"),
        ({"price": "10000000.00"}, f"price must be at most {MAX_PRICE}"),
        ({"price": [1]}, "price must be a number"),
        ({"stock": -1}, "stock must be a whole number"),
        ({"stock": 1.5}, "stock must be a whole number"),
        ({"stock": 3.0}, "stock must be a whole number"),
        ({"stock": "3"}, "stock must be a whole number"),
        ({"stock": True}, "stock must be a whole number"),
        ({"stock": MAX_STOCK + 1}, "stock must be a whole number"),
        ({"stock": {"n": 1}}, "stock must be a whole number"),
    ],
)
def test_bad_values_are_a_400_naming_the_field_and_store_nothing(client, postgres, fields, message):
    """Each bad price or stock is answered 400 with a JSON error that names the field; no movie is created."""
    response = client.post("/api/movies", json={"title": "Refused", **fields})
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert postgres.count_rows("movies_db", "movies") == 0


def test_a_stock_beyond_any_integer_is_a_400_not_a_500(client):
    """A stock of 5,000 digits (past Python's integer parsing limit) is refused as a bad body, not a crash."""
    body = b'{"title": "Huge", "stock": 1' + b"0" * 5000 + b"}"
    response = client.post("/api/movies", data=body, content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.get_json()["error"]


def test_update_changes_only_the_fields_given(client):
    """PUT with price alone changes the price; stock, title and description stay."""
    movie = _create(client, description="1979", stock=4, price="10")
    updated = client.put(f"/api/movies/{movie['id']}", json={"price": "12.5"}).get_json()
    assert updated == {**movie, "price": "12.50"}
    assert client.put(f"/api/movies/{movie['id']}", json={"title": "Zone"}).get_json() == {
        **movie, "title": "Zone", "price": "12.50"}


def test_update_with_null_takes_a_movie_off_sale(client, postgres):
    """PUT stock null and price null clears both: the movie is no longer for sale."""
    movie = _create(client, stock=2, price="5.00")
    updated = client.put(f"/api/movies/{movie['id']}", json={"stock": None, "price": None}).get_json()
    assert (updated["stock"], updated["price"]) == (None, None)
    assert _stored(postgres, movie["id"]) == (None, None)


def test_refused_update_changes_nothing(client):
    """A PUT with a good title and a bad price is a 400 and leaves the whole movie as it was."""
    movie = _create(client, stock=1, price="3.00")
    response = client.put(f"/api/movies/{movie['id']}", json={"title": "Renamed", "price": "3.999"})
    assert response.status_code == 400
    assert "price" in response.get_json()["error"]
    assert client.get(f"/api/movies/{movie['id']}").get_json() == movie


def test_the_database_refuses_a_negative_stock(client, postgres):
    """Whatever the statement, PostgreSQL refuses stock below zero (movies_stock_not_negative): taking 5 from a
    stock of 3 fails and the stock stays 3."""
    movie = _create(client, stock=3)
    with pytest.raises(errors.CheckViolation) as excinfo:
        postgres.query("movies_db", "UPDATE movies SET stock = stock - 5 WHERE id = %s", (movie["id"],))
    assert excinfo.value.diag.constraint_name == "movies_stock_not_negative"
    assert client.get(f"/api/movies/{movie['id']}").get_json()["stock"] == 3


def test_a_movie_from_before_the_migration_answers_null_and_can_be_priced(inventory_settings, postgres, monkeypatch):
    """A movie stored under the schema before stock and price (migrations 1-2) still answers after the upgrade,
    unchanged, with stock and price null; an editor can then set both."""
    postgres.query("movies_db", f"DROP SCHEMA IF EXISTS {UPGRADE_SCHEMA} CASCADE")
    postgres.query("movies_db", f"CREATE SCHEMA {UPGRADE_SCHEMA}")
    # libpq applies PGOPTIONS to every new connection: this test's pools see only the scratch schema.
    monkeypatch.setenv("PGOPTIONS", f"-c search_path={UPGRADE_SCHEMA}")
    old_pool = ConnectionPool(inventory_settings, "upgrade-check")
    try:
        Schema(old_pool, "inventory", MIGRATIONS[: SALE_MIGRATION - 1]).ensure()
        with old_pool.connection() as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO movies (title, description) VALUES ('Solaris', '1972') RETURNING id")
            (movie_id,) = cur.fetchone()
        app = create_app(inventory_settings)
        client = app.test_client()
        assert client.get(f"/api/movies/{movie_id}").get_json() == {
            "id": movie_id, "title": "Solaris", "description": "1972", "poster": None, "poster_status": None,
            "stock": None, "price": None,
        }
        with old_pool.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT max(version) FROM schema_migrations WHERE service = 'inventory'")
            assert cur.fetchone() == (len(MIGRATIONS),)
        updated = client.put(f"/api/movies/{movie_id}", json={"stock": 5, "price": "9.99"}).get_json()
        assert (updated["title"], updated["stock"], updated["price"]) == ("Solaris", 5, "9.99")
    finally:
        old_pool.close()
        monkeypatch.delenv("PGOPTIONS")
        postgres.query("movies_db", f"DROP SCHEMA IF EXISTS {UPGRADE_SCHEMA} CASCADE")


def test_the_store_itself_cannot_write_a_negative_stock(client, postgres):
    """Even a caller that skips validation (the store's update) cannot store stock -1: the CHECK refuses it."""
    movie = _create(client, stock=1)
    store = STORE.of(client.application)
    with pytest.raises(psycopg2.IntegrityError):
        store.update(movie["id"], {"stock": -1})
    assert _stored(postgres, movie["id"])[0] == 1
