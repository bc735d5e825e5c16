"""Movies CRUD through the gateway, on the real local system (gateway -> inventory -> PostgreSQL)."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.e2e


def _title(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def test_full_crud_flow(gateway, http):
    """Create, read, list, update, delete one movie; every step answers the documented status and body."""
    title = _title("Stalker")
    created = http.post(f"{gateway}/api/movies", json={"title": title, "description": "Zone"})
    assert created.status_code == 201
    movie = created.json()
    assert movie["title"] == title and movie["description"] == "Zone" and isinstance(movie["id"], int)

    url = f"{gateway}/api/movies/{movie['id']}"
    assert http.get(url).json() == movie
    assert movie in http.get(f"{gateway}/api/movies").json()

    updated = http.put(url, json={"description": "The Zone"})
    assert updated.status_code == 200
    assert updated.json() == {**movie, "description": "The Zone"}

    assert http.delete(url).status_code == 200
    gone = http.get(url)
    assert gone.status_code == 404
    assert "not found" in gone.json()["error"]


def test_delete_all_movies(gateway, http):
    """DELETE /api/movies empties the collection."""
    http.post(f"{gateway}/api/movies", json={"title": _title("Ran")})
    assert http.delete(f"{gateway}/api/movies").status_code == 200
    assert http.get(f"{gateway}/api/movies").json() == []


@pytest.mark.parametrize("needle", ["100%", "a_b", "back\\slash", "%", "_"])
def test_title_search_matches_special_characters_literally(gateway, http, needle):
    """%, _ and \\ in ?title= are ordinary characters: only titles that really contain them match."""
    tag = uuid.uuid4().hex[:8]
    wanted = http.post(f"{gateway}/api/movies", json={"title": f"{tag} {needle} end"}).json()
    decoy = http.post(f"{gateway}/api/movies", json={"title": f"{tag} plain xyz"}).json()
    found = http.get(f"{gateway}/api/movies", params={"title": f"{tag} {needle}"}).json()
    assert wanted in found
    assert decoy not in found


def test_title_search_is_case_insensitive_for_unicode(gateway, http):
    """Search ignores case, also outside ASCII."""
    tag = uuid.uuid4().hex[:8]
    movie = http.post(f"{gateway}/api/movies", json={"title": f"Ёжик в тумане {tag}"}).json()
    assert movie in http.get(f"{gateway}/api/movies", params={"title": "ёЖИК"}).json()
    assert [movie] == http.get(f"{gateway}/api/movies", params={"title": tag}).json()


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "phrase"),
    [
        ("post", "/api/movies", {"title": ""}, 400, "must not be empty"),
        ("post", "/api/movies", {"description": "no title"}, 400, "title is required"),
        ("post", "/api/movies", {"title": 42}, 400, "must be a string"),
        ("post", "/api/movies", {"title": "x", "rating": 5}, 400, "unknown field"),
        ("post", "/api/movies", {"title": "x" * 201}, 400, "at most 200"),
        ("post", "/api/movies", {"title": "nul\u0000byte"}, 400, "NUL"),
        ("put", "/api/movies/1", {}, 400, "nothing to update"),
        ("get", "/api/movies/abc", None, 404, ""),
        ("get", "/api/movies/99999999999999999999999999", None, 404, "not found"),
        ("delete", "/api/movies/0", None, 404, "not found"),
    ],
)
def test_bad_input_gets_a_clear_json_error(gateway, http, method, path, body, status, phrase):
    """Bad input answers 4xx with {"error": ...} saying what is wrong, never a 500."""
    response = getattr(http, method)(f"{gateway}{path}", json=body)
    assert response.status_code == status
    assert phrase in response.json()["error"]


@pytest.mark.parametrize("raw", [b"not json", b"[1,2]", b"", b"\xff\xfe"])
def test_body_that_is_not_a_json_object_is_400(gateway, http, raw):
    """A body that is not one JSON object is a 400 with a JSON error."""
    response = http.post(f"{gateway}/api/movies", data=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "error" in response.json()


def test_gateway_returns_inventorys_exact_status_and_body(gateway, urls, http):
    """What the gateway returns is byte-for-byte what inventory returned for the same request."""
    movie = http.post(f"{gateway}/api/movies", json={"title": _title("Mirror")}).json()
    for path in (f"/api/movies/{movie['id']}", "/api/movies/not-a-number", "/api/movies?title=Mirror"):
        direct = http.get(urls["inventory"] + path)
        proxied = http.get(gateway + path)
        assert (proxied.status_code, proxied.content) == (direct.status_code, direct.content)


def test_request_id_travels_to_inventory_logs(gateway, http, local_system):
    """A caller's X-Request-ID comes back in the response and appears in inventory's log lines."""
    request_id = f"e2e-{uuid.uuid4().hex}"
    response = http.get(f"{gateway}/api/movies", headers={"X-Request-ID": request_id})
    assert response.headers["X-Request-ID"] == request_id
    log_file = local_system.log_files()["inventory"]
    assert any(request_id in line for line in open(log_file, encoding="utf-8"))


def test_openapi_document_and_docs_page(gateway, http):
    """The gateway documents every public operation, with the limits the services enforce."""
    spec = http.get(f"{gateway}/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {
        "/api/movies", "/api/movies/{id}", "/api/movies/{id}/poster", "/api/billing", "/api/orders", "/api/orders/{id}",
        "/api/orders/{id}/invoice",
    }
    assert spec["components"]["schemas"]["NewMovie"]["properties"]["title"]["maxLength"] == 200
    page = http.get(f"{gateway}/docs")
    assert page.status_code == 200 and "/api/billing" in page.text


def test_health_ready_and_metrics(urls, http):
    """Every service answers /health and /ready with 200 and exposes Prometheus metrics."""
    for base in urls.values():
        assert http.get(f"{base}/health").status_code == 200
        assert http.get(f"{base}/ready").status_code == 200
        assert "# TYPE" in http.get(f"{base}/metrics").text
    assert "http_requests_total" in http.get(f"{urls['gateway']}/metrics").text
