"""The gateway's minimal HTTP/1.1 client against a scripted socket server: framing, keep-alive, close, errors."""

from __future__ import annotations

import socket
import threading

import pytest

from gateway.proxy import _STALE_CONNECTION, upstream_target
from gateway.upstream import ProtocolError, UpstreamConnection


def _serve(answers: list[bytes]) -> tuple[int, list[bytes]]:
    """A one-connection server that answers each request with the next scripted bytes, then closes."""
    server = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def run() -> None:
        conn, _ = server.accept()
        with conn, server:
            for answer in answers:
                received.append(conn.recv(65536))
                conn.sendall(answer)

    threading.Thread(target=run, daemon=True).start()
    return server.getsockname()[1], received


def test_content_length_then_chunked_on_one_kept_alive_connection():
    port, received = _serve([
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 201 CREATED\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
    ])
    conn = UpstreamConnection("127.0.0.1", port, 2, 2)
    assert conn.exchange("GET", "/api/movies/1", {"X-Request-ID": "r1"}, None) == (
        200, [("Content-Type", "application/json"), ("Content-Length", "2")], b"{}", False
    )
    status, _headers, body, close = conn.exchange("POST", "/api/movies", {}, b'{"a": 1}')
    assert (status, body, close) == (201, b"abcde", False)
    assert received[0].startswith(b"GET /api/movies/1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"X-Request-ID: r1\r\n" in received[0] and b"Content-Length" not in received[0]
    assert received[1].endswith(b'Content-Length: 8\r\n\r\n{"a": 1}')
    conn.close()


def test_unframed_body_ends_at_close_and_connection_close_is_reported():
    port, _ = _serve([b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"])
    conn = UpstreamConnection("127.0.0.1", port, 2, 2)
    assert conn.exchange("GET", "/", {}, None)[2:] == (b"all of it", True)


def test_head_and_204_have_no_body():
    port, _ = _serve([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", b"HTTP/1.1 204 NO CONTENT\r\n\r\n"])
    conn = UpstreamConnection("127.0.0.1", port, 2, 2)
    assert conn.exchange("HEAD", "/", {}, None)[2] == b""
    assert conn.exchange("DELETE", "/x", {}, None)[:1] == (204,)


def test_a_closed_kept_alive_connection_is_stale_and_garbage_is_a_protocol_error():
    port, _ = _serve([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    conn = UpstreamConnection("127.0.0.1", port, 2, 2)
    conn.exchange("GET", "/", {}, None)
    # EOF (StaleConnection) or a reset, depending on whether the server's close raced the request: the proxy
    # treats each of them as "the kept-alive connection was already dead" and retries on a fresh one.
    with pytest.raises(_STALE_CONNECTION):
        conn.exchange("GET", "/", {}, None)
    port, _ = _serve([b"SSH-2.0-OpenSSH\r\n\r\n"])
    with pytest.raises(ProtocolError):
        UpstreamConnection("127.0.0.1", port, 2, 2).exchange("GET", "/", {}, None)


def test_a_truncated_body_is_a_protocol_error():
    port, _ = _serve([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"])
    with pytest.raises(ProtocolError):
        UpstreamConnection("127.0.0.1", port, 2, 2).exchange("GET", "/", {}, None)


@pytest.mark.parametrize(
    ("path", "query", "target"),
    [
        ("/api/movies/1", b"", "/api/movies/1"),
        ("/api/movies", b"title=a%20b&x=%25", "/api/movies?title=a%20b&x=%25"),
        ("/api/movies/a b", b"", "/api/movies/a%20b"),
        ("/api/movies/\rX-Injected: yes", b"", "/api/movies/%0DX-Injected:%20yes"),
        ("/api/movies/\x00", b"", "/api/movies/%00"),
        ("/api/movies/é%", b"", "/api/movies/%C3%A9%25"),
    ],
)
def test_the_decoded_path_is_encoded_again_for_the_request_line(path, query, target):
    """Flask decodes the path; spaces, controls, '%' and non-ASCII go upstream percent-encoded, never raw."""
    assert upstream_target(path, query) == target


def test_a_target_with_a_control_character_is_refused_before_anything_is_sent():
    """Defence in depth: the connection itself never writes a CR, LF, NUL or space into the request line."""
    port, received = _serve([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    conn = UpstreamConnection("127.0.0.1", port, 2, 2)
    with pytest.raises(ProtocolError):
        conn.exchange("GET", "/api/movies/\r\nX-Injected: yes", {}, None)
    with pytest.raises(ProtocolError):
        conn.exchange("GET", "/api/movies/1", {"X-Evil": "a\r\nX-Injected: yes"}, None)
    conn.close()
    assert b"".join(received) == b""  # the server saw the connection close, and not a byte


def test_the_gateway_forwards_an_encoded_carriage_return_as_one_request_line(monkeypatch):
    """GET /api/movies/%0dX-Injected:%20yes reaches inventory as one encoded target, without an extra header."""
    port, received = _serve([b"HTTP/1.1 404 NOT FOUND\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"])
    for name, value in {
        "INVENTORY_URL": f"http://127.0.0.1:{port}", "AUTH_REQUIRED": "false",
        "RABBITMQ_USER": "unit", "RABBITMQ_PASSWORD": "unit",
    }.items():
        monkeypatch.setenv(name, value)
    import gateway

    response = gateway.create_app().test_client().get("/api/movies/%0dX-Injected:%20yes")
    assert response.status_code == 404
    request_lines = received[0].split(b"\r\n")
    assert request_lines[0] == b"GET /api/movies/%0DX-Injected:%20yes HTTP/1.1"
    assert not any(line.lower().startswith(b"x-injected") for line in request_lines)


def _serve_one_request_per_connection(connections: int) -> tuple[int, list[bytes], threading.Semaphore]:
    """A server that answers one request on each connection and then closes it, like a restarted upstream
    closes the gateway's kept-alive connections (without a ``Connection: close`` warning)."""
    server = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []
    closed = threading.Semaphore(0)  # released after each connection is closed

    def run() -> None:
        with server:
            for _ in range(connections):
                conn, _ = server.accept()
                with conn:
                    received.append(conn.recv(65536))
                    conn.sendall(b"HTTP/1.1 201 CREATED\r\nContent-Length: 2\r\n\r\n{}")
                closed.release()

    threading.Thread(target=run, daemon=True).start()
    return server.getsockname()[1], received, closed


def test_a_post_after_the_upstream_closed_the_idle_connection_goes_on_a_fresh_one(monkeypatch):
    """A POST is never retried (it may have been applied), so the proxy must notice the upstream's close before
    sending it: the second POST succeeds on a new connection instead of answering 502."""
    port, received, closed = _serve_one_request_per_connection(2)
    for name, value in {
        "INVENTORY_URL": f"http://127.0.0.1:{port}", "AUTH_REQUIRED": "false",
        "RABBITMQ_USER": "unit", "RABBITMQ_PASSWORD": "unit",
    }.items():
        monkeypatch.setenv(name, value)
    import gateway

    client = gateway.create_app().test_client()
    assert client.post("/api/movies", json={"title": "a"}).status_code == 201
    assert closed.acquire(timeout=5)  # the upstream closed the kept-alive connection (loopback: FIN already here)
    assert client.post("/api/movies", json={"title": "b"}).status_code == 201
    assert [r.split(b"\r\n", 1)[0] for r in received] == [b"POST /api/movies HTTP/1.1"] * 2
