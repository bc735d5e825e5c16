"""A minimal HTTP/1.1 client connection for the gateway's hop to inventory.

``http.client`` builds each request with several ``send`` calls and parses every response header block with the
``email`` package; on the gateway's hot path that was half a worker's CPU. This connection sends a request as
one buffer and parses the status line and headers with ``bytes.split``. It speaks only what inventory (gunicorn)
answers: ``Content-Length`` or chunked bodies, or a body up to the connection's close.
"""

from __future__ import annotations

import re
import select
import socket

# Upper bound of a response's status line plus headers: more means a broken or hostile upstream.
MAX_HEAD = 64 * 1024
_CHUNK = 65536
# What must never reach the request line (the target) or a header line.
_UNSAFE_TARGET = re.compile(r"[\x00-\x20\x7f]")
_UNSAFE_HEADER = re.compile(r"[\x00\r\n]")
# Statuses that never carry a body (RFC 9112 6.3).
_NO_BODY = frozenset({204, 304})


class ProtocolError(OSError):
    """The upstream answered something that is not a well-formed HTTP/1.1 response."""


class StaleConnection(ProtocolError):
    """A kept-alive connection was closed by the upstream before it answered a single byte."""


class UpstreamConnection:
    """One keep-alive TCP connection; ``exchange`` sends a request and returns the whole response."""

    def __init__(self, host: str, port: int, connect_timeout: float, read_timeout: float):
        self._host_header = host if port == 80 else f"{host}:{port}"
        self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        self.sock.settimeout(read_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def closed_by_peer(self) -> bool:
        """True when the idle socket is readable: the server closed it (EOF) or sent something unasked.

        A server that restarted or timed the connection out has sent its FIN already; checking before a
        request (one non-blocking select, about a microsecond) avoids sending a POST into a dead connection,
        which could not be retried safely.
        """
        if self.sock is None:
            return True
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)

    def close(self) -> None:
        """Close the socket (idempotent)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def exchange(
        self, method: str, target: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, list[tuple[str, str]], bytes, bool]:
        """Send one request; return status, headers, body and whether the connection must be closed now.

        A target or header with a space (target only), CR, LF or NUL is refused: it would split the request.
        """
        if _UNSAFE_TARGET.search(target) or any(_UNSAFE_HEADER.search(f"{k}{v}") for k, v in headers.items()):
            raise ProtocolError("request target or header contains a control character")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host_header}"]
        lines.extend(f"{key}: {value}" for key, value in headers.items())
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.sock.sendall(head + body if body else head)
        return self._read_response(method)

    def _read_response(self, method: str) -> tuple[int, list[tuple[str, str]], bytes, bool]:
        while True:
            head = self._read_head()
            status_line, _, header_block = head.partition(b"\r\n")
            parts = status_line.split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise ProtocolError(f"malformed status line {status_line[:80]!r}")
            status = int(parts[1])
            if 100 <= status < 200:  # an interim answer (100 Continue): the real one follows
                continue
            break
        headers: list[tuple[str, str]] = []
        length: int | None = None
        chunked = False
        close = parts[0] == b"HTTP/1.0"
        for raw in header_block.split(b"\r\n"):
            if not raw:
                continue
            name, sep, value = raw.partition(b":")
            if not sep:
                raise ProtocolError("malformed header line")
            key = name.strip().decode("latin-1")
            text = value.strip().decode("latin-1")
            lowered = key.lower()
            if lowered == "content-length":
                if not text.isdigit():
                    raise ProtocolError("malformed Content-Length")
                length = int(text)
            elif lowered == "transfer-encoding":
                chunked = text.lower().endswith("chunked")
            elif lowered == "connection":
                tokens = {token.strip().lower() for token in text.split(",")}
                close = "close" in tokens or (close and "keep-alive" not in tokens)
            headers.append((key, text))
        if method == "HEAD" or status in _NO_BODY:
            body = b""
        elif chunked:
            body = self._read_chunked()
        elif length is not None:
            body = self._read_exactly(length)
        else:  # no framing: the body ends when the upstream closes the connection
            body = self._buffer + self._read_to_close()
            self._buffer = b""
            close = True
        return status, headers, body, close

    def _recv(self) -> bytes:
        data = self.sock.recv(_CHUNK)
        if not data:
            raise ProtocolError("upstream closed the connection mid-response")
        return data

    def _read_head(self) -> bytes:
        first = not self._buffer
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end >= 0:
                head, self._buffer = self._buffer[:end], self._buffer[end + 4:]
                return head
            if len(self._buffer) > MAX_HEAD:
                raise ProtocolError("response headers too large")
            data = self.sock.recv(_CHUNK)
            if not data:
                if first and not self._buffer:
                    raise StaleConnection("upstream closed the kept-alive connection")
                raise ProtocolError("upstream closed the connection mid-response")
            self._buffer += data

    def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._buffer += self._recv()
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _read_line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD:
                raise ProtocolError("chunk header too long")
            self._buffer += self._recv()
        line, self._buffer = self._buffer[:end], self._buffer[end + 2:]
        return line

    def _read_chunked(self) -> bytes:
        pieces: list[bytes] = []
        while True:
            size_text = self._read_line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise ProtocolError("malformed chunk size") from None
            if size == 0:
                while self._read_line():  # trailer fields, ignored, up to the empty line
                    pass
                return b"".join(pieces)
            pieces.append(self._read_exactly(size))
            if self._read_exactly(2) != b"\r\n":
                raise ProtocolError("malformed chunk end")

    def _read_to_close(self) -> bytes:
        pieces = []
        while data := self.sock.recv(_CHUNK):
            pieces.append(data)
        return b"".join(pieces)
