import io
import json
import logging

from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, use_span

from servicekit.logs import JsonFormatter, current_service


def _log_line(formatter: JsonFormatter, **extra: object) -> dict[str, object]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("test.logs")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.warning("stock for %s is %d", "꽈배기", 3, extra=extra)
    return json.loads(stream.getvalue())  # type: ignore[no-any-return]


def test_a_line_is_one_json_object_with_the_standard_fields() -> None:
    line = _log_line(JsonFormatter("api"), deal_id="d-1")

    assert line["level"] == "WARNING"
    assert line["service"] == "api"
    assert line["message"] == "stock for 꽈배기 is 3"
    assert line["deal_id"] == "d-1"
    assert line["trace_id"] == ""
    assert line["span_id"] == ""
    assert str(line["ts"]).endswith("+00:00")


def test_a_line_inside_a_span_carries_its_trace_and_span_ids() -> None:
    ctx = SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=False,
        trace_flags=TraceFlags(1),
    )
    with use_span(NonRecordingSpan(ctx)):
        line = _log_line(JsonFormatter("push"))

    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert line["span_id"] == "00f067aa0ba902b7"


def test_the_current_service_context_names_the_service_in_a_shared_process() -> None:
    token = current_service.set("auth")
    try:
        line = _log_line(JsonFormatter("push"))
    finally:
        current_service.reset(token)
    assert line["service"] == "auth"
