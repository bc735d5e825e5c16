"""Forwarding of ``/api/movies*`` to inventory, and of order-status reads to billing, over keep-alive connections."""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import quote, urlsplit

from flask import Request, Response

from common import tracing
from common.web import error_response
from contract.messaging import HTTP_PRINCIPAL_SUB, HTTP_READ_ALL, HTTP_REQUEST_ID, TRACEPARENT, TRACESTATE
from gateway import metrics
from gateway.upstream import ProtocolError, StaleConnection, UpstreamConnection

log = logging.getLogger(__name__)

# Hop-by-hop headers describe one connection, not the message (RFC 9110 7.6.1): never forwarded.
_HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "host", "content-length",
    }
)
# Credentials are for the gateway (inventory trusts the gateway, not the caller's token); the request id and
# X-Forwarded-For are set by the gateway itself, so the caller's copies would make them appear twice. The
# principal headers are set only by the gateway, after verification: a caller's copy would be an impersonation.
# Trace context starts at the gateway (common.tracing): a caller's traceparent is never passed on.
_NOT_FORWARDED = _HOP_BY_HOP | {
    "authorization", "cookie", "x-amzn-oidc-data", "x-amzn-oidc-accesstoken",
    HTTP_REQUEST_ID.lower(), "x-forwarded-for", HTTP_PRINCIPAL_SUB.lower(), HTTP_READ_ALL.lower(),
    TRACEPARENT, TRACESTATE,
}
_NOT_RETURNED = _HOP_BY_HOP | {HTTP_REQUEST_ID.lower(), "server", "date"}
# RFC 3986 pchar and "/": left as they are; everything else (spaces, controls, "%", non-ASCII) is encoded.
_PATH_SAFE = "/-._~!$&'()*+,;=:@"
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Errors that mean "the kept-alive connection was already dead" rather than "inventory failed".
_STALE_CONNECTION = (StaleConnection, ConnectionResetError, BrokenPipeError)


def upstream_target(path: str, query_string: bytes) -> str:
    """The request target for inventory: the path percent-encoded again, the query string as received.

    Flask hands the path over decoded (``%20`` is a space, ``%0d`` a carriage return): written into the request
    line as it is, it would split the line or smuggle a header into the upstream request.
    """
    target = quote(path, safe=_PATH_SAFE)
    return f"{target}?{query_string.decode('latin-1')}" if query_string else target


class InventoryProxy:
    """Sends a request on to inventory (or, named ``billing``, to billing) and returns its exact status and body.

    Each gateway thread keeps one keep-alive connection (``gateway.upstream``: one send and a split-based
    parser per request, cheaper than ``http.client`` and far cheaper than a general-purpose pool; the gateway's
    CPU is what limits it). A connection idle for longer than
    ``max_idle`` is replaced before use, because inventory closes idle connections after its own keep-alive
    (75 s): reusing one it is about to close would fail a request that never reached it.
    """

    def __init__(
        self,
        base_url: str,
        connect_timeout: float,
        read_timeout: float,
        max_idle: float = 30.0,
        name: str = "inventory",
    ):
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"{name.upper()}_URL must be http://host[:port], got {base_url!r}")
        self.name = name
        self._host = parts.hostname
        self._port = parts.port or 80
        self._prefix = parts.path.rstrip("/")
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_idle = max_idle
        self._local = threading.local()

    def _connection(self) -> tuple[UpstreamConnection, bool]:
        """This thread's connection and whether it was used before (a reused one may be stale)."""
        conn: UpstreamConnection | None = getattr(self._local, "conn", None)
        fresh_enough = conn is not None and time.monotonic() - self._local.last_used < self._max_idle
        if fresh_enough and not conn.closed_by_peer():
            return conn, True
        if conn is not None:
            conn.close()
        conn = UpstreamConnection(self._host, self._port, self._connect_timeout, self._read_timeout)
        self._local.conn = conn
        return conn, False

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def _exchange(self, method: str, target: str, body: bytes | None, headers: dict[str, str]):
        for attempt in (1, 2):
            conn, reused = self._connection()
            try:
                status, upstream_headers, data, will_close = conn.exchange(method, target, headers, body)
            except _STALE_CONNECTION:
                self._drop_connection()
                # Retry once on a fresh connection, only when a reused connection broke and a repeat is safe.
                if attempt == 1 and reused and method in _IDEMPOTENT:
                    continue
                raise
            except BaseException:
                self._drop_connection()
                raise
            self._local.last_used = time.monotonic()
            if will_close:
                self._drop_connection()
            return status, upstream_headers, data
        raise AssertionError("unreachable")

    def forward(
        self,
        request: Request,
        request_id: str,
        path: str | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> Response | tuple[Response, int]:
        """Forward ``request`` (method, path, query, body) and relay the upstream's answer.

        ``path`` replaces the request's path (billing serves ``/orders``, not ``/api/orders``); ``extra_headers``
        are set by the gateway itself (the verified principal) after the caller's copies were dropped.
        """
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        headers.update(extra_headers or {})
        headers[HTTP_REQUEST_ID] = request_id
        forwarded_for = request.headers.get("X-Forwarded-For")
        client = request.remote_addr or ""
        headers["X-Forwarded-For"] = f"{forwarded_for}, {client}" if forwarded_for else client
        target = self._prefix + upstream_target(request.path if path is None else path, request.query_string)
        try:
            with tracing.span(f"{request.method} {self.name}", tracing.CLIENT, {"server.address": self.name}):
                tracing.inject(headers)  # the caller's traceparent was dropped above: ours continues the trace
                status, upstream_headers, data = self._exchange(
                    request.method, target, request.get_data() or None, headers
                )
        except TimeoutError:
            return self._failure(request, "timeout", 504, f"{self.name} did not answer in time")
        except (OSError, ProtocolError) as exc:
            return self._failure(request, "unreachable", 502, f"{self.name} is unreachable", reason=repr(exc))
        response = Response(data, status=status)
        for key, value in upstream_headers:
            if key.lower() not in _NOT_RETURNED:
                response.headers[key] = value
        return response

    def _failure(self, request: Request, kind: str, status: int, message: str, reason: str = ""):
        metrics.UPSTREAM_ERRORS.labels(self.name, kind).inc()
        log.warning(
            f"{self.name} request failed",
            extra={"method": request.method, "path": request.path, "kind": kind, "reason": reason},
        )
        return error_response(status, message)
