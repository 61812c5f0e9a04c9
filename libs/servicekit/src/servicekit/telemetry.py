"""OpenTelemetry tracing into Zipkin, the same way in every service.

A request's span starts in :class:`TracingMiddleware`; SQLAlchemy, httpx and aiokafka spans hang
under it. Across Kafka the context travels as a ``traceparent`` header (api's outbox stores the
request's and the relay sends it), and consumers continue it with :func:`consumer_span`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
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
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, StatusCode
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


def setup_tracing(service: str, settings: TracingSettings) -> TracerProvider | None:
    """Installs the process's tracer provider (once) and the library instrumentations."""
    global _provider  # noqa: PLW0603 — one provider per process, as OpenTelemetry wants
    if not settings.enabled:
        return None
    if _provider is None:
        provider = TracerProvider(
            resource=Resource.create({SERVICE_NAME: service}),
            sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
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
    return _provider


class TracingMiddleware:
    """A SERVER span per request, named ``METHOD /route/{template}``; pure ASGI.

    Cheap when the request is not sampled: the sampler decides first (ParentBased over
    TraceIdRatio), and a non-recording span only carries the trace id (for logs and the outbox's
    ``traceparent``) — no attributes, no wrapped ``send``. OpenTelemetry's FastAPI instrumentation
    computed its attributes and matched every route again on each request, sampled or not.
    """

    def __init__(
        self,
        app: ASGIApp,
        tracer_provider: trace.TracerProvider,
        excluded_paths: frozenset[str] = _EXCLUDED_PATHS,
    ) -> None:
        self.app = app
        self.tracer = tracer_provider.get_tracer("servicekit.http")
        self.excluded_paths = excluded_paths

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
        span = self.tracer.start_span(method, context=parent, kind=SpanKind.SERVER)
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


def instrument(app: FastAPI, tracer_provider: trace.TracerProvider | None = None) -> None:
    """Request spans for the app (a no-op while tracing is off)."""
    provider = tracer_provider or _provider
    if provider is None:
        return
    # FastAPI's native telemetry traces requests itself once a global tracer provider is set:
    # that would be a second SERVER span per request, with attributes computed even when
    # unsampled. Ours replaces it (FastAPI takes a TelemetryConfig only in its constructor, hence
    # its private dict; tests/test_telemetry.py fails if a FastAPI upgrade traces twice again).
    app._telemetry.update({"tracing": False, "metrics": False, "logs": False})
    app.add_middleware(TracingMiddleware, tracer_provider=provider)


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
