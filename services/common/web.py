"""HTTP plumbing every service gets from one call, ``init_app``: request ids, JSON request logs, Prometheus
metrics, JSON errors, and the ``/health``, ``/ready`` and ``/metrics`` endpoints."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Collection, Mapping

from flask import Blueprint, Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from common import metrics, tracing
from common.config import env_bool
from common.errors import DependencyUnavailable
from common.log import principal_var, request_id_var
from contract import environment as env
from contract.messaging import HTTP_REQUEST_ID

log = logging.getLogger("http")

# Accept a caller's request id only if it is short and plain, so it cannot forge log lines.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Probes and scrapes would drown the request log; they are still counted in the metrics.
_QUIET_PATHS = frozenset({"/health", "/ready", "/metrics"})

ReadinessCheck = Callable[[], None]
#: Extra fields for the ``/health`` and ``/ready`` bodies (billing: ``{"leader": true}``); cheap, no I/O.
StatusDetails = Callable[[], Mapping[str, object]]


def new_request_id() -> str:
    """A fresh request id (32 hex characters, 128 random bits like a uuid4 but a third of its cost)."""
    return os.urandom(16).hex()


def accept_request_id(value: str | None) -> str:
    """The caller's request id if it is well-formed, else a fresh one."""
    if value and _VALID_REQUEST_ID.match(value):
        return value
    return new_request_id()


def error_response(status: int, message: str, **details: object) -> tuple[Response, int]:
    """The JSON error body every service answers with: ``{"error": message, ...details}``."""
    body: dict[str, object] = {"error": message}
    body.update(details)
    return jsonify(body), status


def init_app(
    app: Flask,
    service: str,
    readiness: Mapping[str, ReadinessCheck],
    details: StatusDetails | None = None,
    *,
    trust_trace_context: bool = True,
    any_of: Collection[str] = (),
) -> None:
    """Attach the shared behaviour to ``app``.

    ``readiness`` maps a dependency name (``"database"``, ``"broker"``) to a callable that raises when that
    dependency cannot be used; ``/ready`` answers 503 naming each failing one. ``details`` adds fields to the
    ``/health`` and ``/ready`` bodies. ``trust_trace_context``: continue a caller's ``traceparent`` (False at
    the public edge, the gateway: a caller must not choose our trace ids or force its requests sampled).
    ``any_of`` names dependencies of which one answering is enough (billing's shards): while at least one of
    them answers, the others failing are reported under ``degraded`` and ``/ready`` stays 200.
    """
    access_log = env_bool(env.ACCESS_LOG)
    tracing.configure(service)
    app.json.sort_keys = False
    app.json.ensure_ascii = False

    # The hooks run on every request: they resolve Flask's context proxies (``request``, ``g``; each attribute
    # access through one costs a context lookup) once and then use the objects themselves.
    @app.before_request
    def _start_request() -> None:
        ctx_g = g._get_current_object()
        ctx_g.request_started = time.perf_counter()
        req = request._get_current_object()
        ctx_g.request_id = request_id = accept_request_id(req.headers.get(HTTP_REQUEST_ID))
        request_id_var.set(request_id)
        if tracing.enabled and req.path not in _QUIET_PATHS:
            rule = req.url_rule
            ctx_g.trace_span = tracing.start_server_span(
                f"{req.method} {rule.rule if rule is not None else 'unmatched'}",
                req.headers if trust_trace_context else None,
                {"http.request.method": req.method, "url.path": req.path, "request.id": request_id},
            )

    @app.after_request
    def _finish_request(response: Response) -> Response:
        ctx_g = g._get_current_object()
        req = request._get_current_object()
        request_id = ctx_g.get("request_id")
        if request_id:
            response.headers[HTTP_REQUEST_ID] = request_id
        started = ctx_g.get("request_started")
        if started is not None:
            elapsed = time.perf_counter() - started
            rule = req.url_rule
            route = rule.rule if rule is not None else "unmatched"
            counter, histogram = metrics.http_children(req.method, route, response.status_code)
            counter.inc()
            histogram.observe(elapsed)
            if tracing.enabled:
                ctx_g.response_status = response.status_code
            if access_log and req.path not in _QUIET_PATHS:
                log.info(
                    "request",
                    extra={
                        "method": req.method,
                        "path": req.path,
                        "status": response.status_code,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
        return response

    @app.teardown_request
    def _clear_request_id(_exc: BaseException | None) -> None:
        if tracing.enabled:
            ctx_g = g._get_current_object()
            started_span = ctx_g.pop("trace_span", None)
            if started_span is not None:
                tracing.end_server_span(*started_span, ctx_g.get("response_status"))
        request_id_var.set(None)
        principal_var.set(None)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        return error_response(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(DependencyUnavailable)
    def _dependency_unavailable(exc: DependencyUnavailable):
        log.warning("dependency unavailable", extra={"dependency": exc.dependency, "reason": str(exc)})
        response, status = error_response(503, f"{exc.dependency} unavailable, try again shortly")
        response.headers["Retry-After"] = "2"
        return response, status

    @app.errorhandler(Exception)
    def _unexpected_error(exc: Exception):
        log.exception("unhandled error", extra={"path": request.path})
        return error_response(500, "internal error")

    app.register_blueprint(_operations_blueprint(service, readiness, details or dict, frozenset(any_of)))


def _operations_blueprint(
    service: str, readiness: Mapping[str, ReadinessCheck], details: StatusDetails, any_of: frozenset[str]
) -> Blueprint:
    ops = Blueprint("operations", __name__)

    @ops.get("/health")
    def health():
        """Liveness: the process answers. Never touches a dependency, so a database outage does not get
        every task killed and restarted."""
        return jsonify(status="ok", service=service, **details())

    @ops.get("/ready")
    def ready():
        """Readiness: every dependency this service needs answers right now. ``dependencies`` lists each one
        with whether it answered and how long its check took (a slow dependency shows before it fails)."""
        failures: dict[str, str] = {}
        dependencies: dict[str, dict[str, object]] = {}
        for name, check in readiness.items():
            started = time.perf_counter()
            try:
                check()
            except Exception as exc:  # noqa: BLE001 - any failure means not ready; the reason is reported
                failures[name] = str(exc) or type(exc).__name__
            latency_ms = round((time.perf_counter() - started) * 1000, 2)
            dependencies[name] = {"ok": name not in failures, "latency_ms": latency_ms}
        degraded = {name: reason for name, reason in failures.items() if name in any_of}
        if degraded and any(name not in failures for name in any_of):
            # One of the group answers: the service still works for what the others hold; say which are away.
            failures = {name: reason for name, reason in failures.items() if name not in any_of}
        else:
            degraded = {}
        if failures:
            body = jsonify(status="unavailable", service=service, failing=failures, dependencies=dependencies,
                           **details())
            return body, 503
        extra = {"degraded": degraded} if degraded else {}
        return jsonify(status="ready", service=service, checks=sorted(readiness), dependencies=dependencies,
                       **extra, **details())

    @ops.get("/metrics")
    def prometheus_metrics():
        body, content_type = metrics.render()
        return Response(body, content_type=content_type)

    return ops
