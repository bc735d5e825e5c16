"""``python -m common.healthcheck``: the probe of the image's HEALTHCHECK names no port, it reads $PORT."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from common import healthcheck


class _Health(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_without_a_url_it_probes_health_on_port(monkeypatch, port):
    monkeypatch.setenv("PORT", str(port))
    assert healthcheck.default_url() == f"http://127.0.0.1:{port}/health"
    assert healthcheck.main(["healthcheck"]) == 0


def test_default_port_is_the_contract_default(monkeypatch):
    monkeypatch.delenv("PORT", raising=False)
    assert healthcheck.default_url() == "http://127.0.0.1:8080/health"


def test_an_explicit_url_still_wins(monkeypatch, port):
    monkeypatch.setenv("PORT", "9")  # nothing listens there
    assert healthcheck.main(["healthcheck", f"http://127.0.0.1:{port}/health"]) == 0
    assert healthcheck.main(["healthcheck", f"http://127.0.0.1:{port}/other"]) == 1
    assert healthcheck.main(["healthcheck"]) == 1


def test_only_the_container_itself_is_probed():
    assert healthcheck.main(["healthcheck", "http://example.com/health"]) == 1
    assert healthcheck.main(["healthcheck", "a", "b"]) == 2
