"""OpenTelemetry traces through our own few seams: the request hooks, the proxy client, publish, consume, SQL.

Off (``OTEL_TRACES_EXPORTER=none``, the default) every helper here returns after one test of ``enabled``: no
SDK is loaded and no span object is made. On, spans are made with the OpenTelemetry SDK and a W3C
``traceparent`` travels in the HTTP headers to inventory/billing and in the AMQP headers of each order, so one
order is one trace from the gateway's request through the broker to billing's INSERT (docs/tracing.md).

Hand-made seams instead of the contrib instrumentations: five places cover the whole path, they cost less
than wrapping every Flask, pika and psycopg2 call, and they follow our own batching (one INSERT, many orders).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from common.config import ConfigError, env_float, env_str
from contract import environment as env

#: True once :func:`configure` installed a tracer; every helper checks it first (off must be nearly free).
enabled = False
_tracer: trace.Tracer = trace.NoOpTracer()
_provider: Any = None
_PROPAGATOR = TraceContextTextMapPropagator()
_NO_SPAN = nullcontext()

SERVER, CLIENT, PRODUCER, CONSUMER = SpanKind.SERVER, SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER
EXPORTERS = ("none", "otlp", "file")


class _HeaderGetter(Getter):
    """Reads ``traceparent``/``tracestate`` from HTTP headers or AMQP headers (whose values may be bytes)."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            return None
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier.keys())


_GETTER = _HeaderGetter()


def _sampler(name: str, ratio: float):
    from opentelemetry.sdk.trace import sampling

    if not 0.0 <= ratio <= 1.0:
        raise ConfigError(f"{env.OTEL_TRACES_SAMPLER_ARG.name} must be between 0 and 1, got {ratio}")
    samplers = {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "parentbased_always_on": sampling.ParentBased(sampling.ALWAYS_ON),
        "traceidratio": sampling.TraceIdRatioBased(ratio),
        "parentbased_traceidratio": sampling.ParentBased(sampling.TraceIdRatioBased(ratio)),
    }
    if name not in samplers:
        raise ConfigError(f"{env.OTEL_TRACES_SAMPLER.name} must be one of {', '.join(samplers)}, got {name!r}")
    return samplers[name]


def _exporter(kind: str, service: str):
    if kind == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = env_str(env.OTEL_EXPORTER_OTLP_ENDPOINT).rstrip("/")
        return OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", timeout=5)
    from common.trace_export import JsonLinesExporter

    folder = env_str(env.TRACES_DIR)
    if not folder:
        raise ConfigError(f"{env.OTEL_TRACES_EXPORTER.name}=file needs {env.TRACES_DIR.name}")
    return JsonLinesExporter(folder, service)


def configure(service: str) -> bool:
    """Install the tracer of this process from the environment (once); return whether tracing is on."""
    kind = env_str(env.OTEL_TRACES_EXPORTER).strip().lower()
    if kind not in EXPORTERS:
        raise ConfigError(f"{env.OTEL_TRACES_EXPORTER.name} must be one of {', '.join(EXPORTERS)}, got {kind!r}")
    if kind == "none" or _provider is not None:
        return enabled
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    sampler = _sampler(env_str(env.OTEL_TRACES_SAMPLER).strip().lower(), env_float(env.OTEL_TRACES_SAMPLER_ARG))
    provider = TracerProvider(resource=Resource.create({"service.name": service}), sampler=sampler)
    # Spans leave in batches from a background thread; half a second keeps `make trace` current.
    provider.add_span_processor(BatchSpanProcessor(_exporter(kind, service), schedule_delay_millis=500))
    use_provider(provider)
    return True


def use_provider(provider: Any) -> None:
    """Trace with ``provider`` (an SDK ``TracerProvider``), or stop tracing (None). :func:`configure` calls it
    with the one the environment describes; tests, with one that keeps spans in memory."""
    global enabled, _tracer, _provider
    _provider = provider
    _tracer = provider.get_tracer("movieapp") if provider is not None else trace.NoOpTracer()
    enabled = provider is not None


def flush(timeout_ms: int = 5000) -> None:
    """Export every finished span now (shutdown; tests)."""
    if _provider is not None:
        _provider.force_flush(timeout_ms)


def extract(headers: Mapping[str, Any] | None) -> otel_context.Context | None:
    """The context whose parent is the ``traceparent`` in ``headers`` (None when tracing is off or none)."""
    if not enabled or not headers:
        return None
    return _PROPAGATOR.extract(headers, getter=_GETTER)


def inject(headers: dict[str, Any]) -> None:
    """Put the current span's ``traceparent`` (and ``tracestate``) into ``headers`` (HTTP or AMQP)."""
    if enabled:
        _PROPAGATOR.inject(headers)


def span(name: str, kind: SpanKind = SpanKind.INTERNAL, attributes: Mapping[str, Any] | None = None):
    """A context manager: a child span of the current one for the block (exceptions set status ERROR)."""
    if not enabled:
        return _NO_SPAN
    return _tracer.start_as_current_span(name, kind=kind, attributes=attributes)


def start_server_span(
    name: str, parent: Mapping[str, Any] | None, attributes: Mapping[str, Any]
) -> tuple[Span, object]:
    """Start the span of one HTTP request and make it current; ``parent``: the caller's headers (or None)."""
    current = _tracer.start_span(name, context=extract(parent), kind=SpanKind.SERVER, attributes=attributes)
    return current, otel_context.attach(trace.set_span_in_context(current))


def end_server_span(current: Span, token: object, status: int | None) -> None:
    """End the request's span (status ERROR for a 5xx or no response) and restore the previous context."""
    if status is not None:
        current.set_attribute("http.response.status_code", status)
    if status is None or status >= 500:
        current.set_status(Status(StatusCode.ERROR))
    current.end()
    otel_context.detach(token)


def start_consumer_span(name: str, headers: Mapping[str, Any] | None, attributes: Mapping[str, Any]) -> Span | None:
    """One received message's span: child of, and linked to, the producer span in its headers."""
    if not enabled:
        return None
    parent = extract(headers)
    producer = trace.get_current_span(parent).get_span_context() if parent is not None else None
    links = [Link(producer)] if producer is not None and producer.is_valid else None
    return _tracer.start_span(name, context=parent, kind=SpanKind.CONSUMER, attributes=attributes, links=links)


@contextmanager
def children(
    parents: Sequence[Span | None],
    name: str,
    kind: SpanKind = SpanKind.CLIENT,
    attributes: Mapping[str, Any] | None = None,
    error: str | None = None,
) -> Iterator[None]:
    """Time the block once and record it as a child span of each recording parent (one INSERT, many orders).

    ``error``: the block's outcome is a failure (a dead-lettering): the children get status ERROR with it.
    """
    parents = [p for p in parents if p is not None and p.is_recording()]
    if not parents:
        yield
        return
    start = time.time_ns()
    failure = error
    try:
        yield
    except BaseException as exc:
        failure = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        end = time.time_ns()
        for parent in parents:
            child = _tracer.start_span(
                name, context=trace.set_span_in_context(parent), kind=kind, attributes=attributes, start_time=start
            )
            if failure:
                child.set_status(Status(StatusCode.ERROR, failure))
            child.end(end_time=end)


def fail(current: Span | None, reason: str) -> None:
    """Mark ``current`` as failed with ``reason``."""
    if current is not None:
        current.set_status(Status(StatusCode.ERROR, reason))


def end(spans: Sequence[Span | None]) -> None:
    """End each span of ``spans``."""
    for current in spans:
        if current is not None:
            current.end()


def use(current: Span | None):
    """A context manager making ``current`` the active span (log lines then carry its trace id)."""
    if current is None:
        return _NO_SPAN
    return trace.use_span(current, end_on_exit=False)


def current_trace_id() -> str | None:
    """The 32-hex trace id of the active span if it is sampled (exported: findable), else None (log lines)."""
    if not enabled:
        return None
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid and context.trace_flags.sampled else None
