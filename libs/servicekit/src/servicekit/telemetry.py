"""OpenTelemetry tracing into Zipkin, the same way in every service.

A request's span starts in FastAPI's instrumentation; SQLAlchemy, httpx and aiokafka spans hang
under it. Across Kafka the context travels as a ``traceparent`` header (api's outbox stores the
request's and the relay sends it), and consumers continue it with :func:`consumer_span`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from fastapi import FastAPI
from opentelemetry import context, propagate, trace
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from pydantic import BaseModel, Field

from servicekit.bus import Headers

_EXCLUDED_URLS = "healthz,readyz,metrics"


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


def instrument(app: FastAPI) -> None:
    """Request spans for the app (a no-op while tracing is off)."""
    if _provider is not None:
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=_provider,
            excluded_urls=_EXCLUDED_URLS,
            exclude_spans=["receive", "send"],
        )


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
