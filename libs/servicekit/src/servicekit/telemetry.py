"""OpenTelemetry tracing into Zipkin, the same way in every service.

A request's span starts in :class:`TracingMiddleware`; SQLAlchemy, httpx and aiokafka spans hang
under it. Across Kafka the context travels as a ``traceparent`` header (api's outbox stores the
request's and the relay sends it), and consumers continue it with :func:`consumer_span`.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any

from fastapi import FastAPI
from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit.bus import Headers

_EXCLUDED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_PROPAGATED = frozenset({b"traceparent", b"tracestate", b"baggage"})


class TracingSettings(BaseModel):
    enabled: bool = Field(default=False, description="Export spans to Zipkin")
    zipkin_endpoint: str = "http://127.0.0.1:9411/api/v2/spans"
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0, description="Of new traces")


_provider: TracerProvider | None = None
_sample_ratio: float | None = None

# A new trace's id drawn by TracingMiddleware (which samples by it); the SDK's span takes it.
_drawn_trace_id: ContextVar[int | None] = ContextVar("servicekit_drawn_trace_id", default=None)


class DrawnTraceIds(RandomIdGenerator):
    """The SDK's random ids; a new trace whose id :class:`TracingMiddleware` already drew (to
    decide its sampling without the SDK) gets that id, so the SDK's sampler decides the same."""

    def generate_trace_id(self) -> int:
        drawn = _drawn_trace_id.get()
        return drawn if drawn is not None else super().generate_trace_id()


def _nonzero_bits(bits: int) -> int:
    value = random.getrandbits(bits)
    while value == 0:  # the invalid id, as RandomIdGenerator redraws it
        value = random.getrandbits(bits)
    return value


def setup_tracing(service: str, settings: TracingSettings) -> TracerProvider | None:
    """Installs the process's tracer provider (once) and the library instrumentations."""
    global _provider, _sample_ratio  # noqa: PLW0603 — one provider per process, as OpenTelemetry wants
    if not settings.enabled:
        return None
    if _provider is None:
        provider = TracerProvider(
            resource=Resource.create({SERVICE_NAME: service}),
            sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
            id_generator=DrawnTraceIds(),
        )
        provider.add_span_processor(
            BatchSpanProcessor(
                ZipkinExporter(endpoint=settings.zipkin_endpoint), schedule_delay_millis=500
            )
        )
        trace.set_tracer_provider(provider)
        HTTPXClientInstrumentor().instrument()
        AIOKafkaInstrumentor().instrument()
        # Wraps sqlalchemy.ext.asyncio.create_async_engine: every engine made after this traces.
        # Its version gate stops at SQLAlchemy 2.0; the engine events it uses are unchanged in 2.1
        # (tests/e2e/test_trace_order_to_fcm.py checks the spans arrive).
        SQLAlchemyInstrumentor().instrument(tracer_provider=provider, skip_dep_check=True)
        _provider = provider
        _sample_ratio = settings.sample_ratio
    return _provider


class TracingMiddleware:
    """A SERVER span per request, named ``METHOD /route/{template}``; pure ASGI.

    Cheap when the request is not sampled: the sampler decides first (ParentBased over
    TraceIdRatio), and a non-recording span only carries the trace id (for logs and the outbox's
    ``traceparent``) — no attributes, no wrapped ``send``. OpenTelemetry's FastAPI instrumentation
    computed its attributes and matched every route again on each request, sampled or not.

    With ``sample_ratio`` (the provider's ``ParentBased(TraceIdRatioBased(ratio))``) and a
    provider drawing ids with :class:`DrawnTraceIds`, a request that starts a new trace is
    decided here: the trace id is drawn and compared with the ratio's bound as the SDK's sampler
    compares it; a sampled one goes to the SDK with that id (which decides the same), an
    unsampled one gets the SDK's non-recording span made directly — its sampler, result objects
    and span metrics cost ~10 µs a request, about as much as the nearby search's index query.
    """

    def __init__(
        self,
        app: ASGIApp,
        tracer_provider: trace.TracerProvider,
        excluded_paths: frozenset[str] = _EXCLUDED_PATHS,
        sample_ratio: float | None = None,
    ) -> None:
        self.app = app
        self.tracer = tracer_provider.get_tracer("servicekit.http")
        self.excluded_paths = excluded_paths
        drawn = isinstance(getattr(tracer_provider, "id_generator", None), DrawnTraceIds)
        self._root_bound = (
            TraceIdRatioBased.get_bound_for_rate(sample_ratio)
            if drawn and sample_ratio is not None
            else None
        )
        # As the SDK flags an unsampled span of a new trace with a random id (W3C level 2).
        self._unsampled = TraceFlags(TraceFlags.DEFAULT | TraceFlags.RANDOM_TRACE_ID)

    def _start(self, method: str, parent: Context, *, new_trace: bool) -> trace.Span:
        if not new_trace or self._root_bound is None:
            return self.tracer.start_span(method, context=parent, kind=SpanKind.SERVER)
        trace_id = _nonzero_bits(128)
        if trace_id & TraceIdRatioBased.TRACE_ID_LIMIT >= self._root_bound:  # the SDK's test
            return NonRecordingSpan(
                SpanContext(trace_id, _nonzero_bits(64), False, self._unsampled)
            )
        drawn = _drawn_trace_id.set(trace_id)
        try:
            return self.tracer.start_span(method, context=parent, kind=SpanKind.SERVER)
        finally:
            _drawn_trace_id.reset(drawn)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.excluded_paths:
            await self.app(scope, receive, send)
            return
        carrier = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k in _PROPAGATED
        }
        # No trace context sent: a new trace (not whatever the server's own context holds).
        parent = propagate.extract(carrier) if carrier else Context()
        method: str = scope["method"]
        span = self._start(method, parent, new_trace=not carrier)
        token = context.attach(trace.set_span_in_context(span, parent))
        if not span.is_recording():
            try:
                await self.app(scope, receive, send)
            finally:
                context.detach(token)
            return
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(StatusCode.ERROR, type(exc).__name__)
            raise
        finally:
            route = getattr(scope.get("route"), "path", None)
            if route:
                span.update_name(f"{method} {route}")
            attributes: dict[str, Any] = {
                "http.request.method": method,
                "url.path": scope["path"],
                "url.scheme": scope.get("scheme", "http"),
                "http.response.status_code": status,
            }
            if route:
                attributes["http.route"] = route
            if scope.get("client"):
                attributes["client.address"] = scope["client"][0]
            span.set_attributes(attributes)
            if status >= 500:
                span.set_status(StatusCode.ERROR)
            context.detach(token)
            span.end()


def instrument(
    app: FastAPI,
    tracer_provider: trace.TracerProvider | None = None,
    sample_ratio: float | None = None,
) -> None:
    """Request spans for the app (a no-op while tracing is off); ``sample_ratio``: that of the
    provider's ``ParentBased(TraceIdRatioBased)`` (setup_tracing's when its provider is used)."""
    provider = tracer_provider or _provider
    if provider is None:
        return
    if tracer_provider is None:
        sample_ratio = _sample_ratio
    # FastAPI's native telemetry traces requests itself once a global tracer provider is set:
    # that would be a second SERVER span per request, with attributes computed even when
    # unsampled. Ours replaces it (FastAPI takes a TelemetryConfig only in its constructor, hence
    # its private dict; tests/test_telemetry.py fails if a FastAPI upgrade traces twice again).
    app._telemetry.update({"tracing": False, "metrics": False, "logs": False})
    app.add_middleware(TracingMiddleware, tracer_provider=provider, sample_ratio=sample_ratio)


def tracing_active() -> bool:
    return _provider is not None


def flush() -> None:
    if _provider is not None:
        _provider.force_flush(timeout_millis=5000)


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, to store with an outbox row."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


@contextlib.contextmanager
def consumer_span(
    name: str, headers: Sequence[tuple[str, bytes]] | Headers, **attributes: str | int
) -> Iterator[trace.Span]:
    """A span continuing the trace carried in a Kafka record's headers.

    aiokafka's own consumer span ends before the handler runs (platform notes), so the processing
    span — and everything under it, such as the FCM call — is opened here.
    """
    carrier = {k: v.decode() for k, v in headers if k in ("traceparent", "tracestate")}
    parent = propagate.extract(carrier)
    token = context.attach(parent)
    try:
        tracer = trace.get_tracer("magam")
        with tracer.start_as_current_span(name, kind=trace.SpanKind.CONSUMER) as span:
            for key, value in attributes.items():
                span.set_attribute(key, value)
            yield span
    finally:
        context.detach(token)
