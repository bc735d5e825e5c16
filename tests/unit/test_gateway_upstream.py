"""The gateway's minimal HTTP/1.1 client against a scripted socket server: framing, keep-alive, close, errors."""

from __future__ import annotations

import socket
import threading

import pytest

from gateway.upstream import ProtocolError, StaleConnection, UpstreamConnection


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
    with pytest.raises(StaleConnection):
        conn.exchange("GET", "/", {}, None)
    port, _ = _serve([b"SSH-2.0-OpenSSH\r\n\r\n"])
    with pytest.raises(ProtocolError):
        UpstreamConnection("127.0.0.1", port, 2, 2).exchange("GET", "/", {}, None)


def test_a_truncated_body_is_a_protocol_error():
    port, _ = _serve([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"])
    with pytest.raises(ProtocolError):
        UpstreamConnection("127.0.0.1", port, 2, 2).exchange("GET", "/", {}, None)
