"""The request's W3C trace context, saved with outbox rows so the relay can forward it."""

from __future__ import annotations

from opentelemetry import propagate


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")
