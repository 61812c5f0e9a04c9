"""Our JSON log lines, as the container runtime writes them, through the expectations of the
Fluentd DaemonSet's parser configuration (charts/magam/templates/fluentd.yaml): the CRI wrapper,
then the JSON parser with its time key and format — every field reaches Elasticsearch as its own."""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import datetime
from pathlib import Path

import pytest
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, use_span

from servicekit.logs import JsonFormatter

CHART = Path(__file__).resolve().parents[2] / "charts" / "magam" / "templates" / "fluentd.yaml"
# fluent-plugin-parser-cri's format: time, stream, partial/full tag, then the container's line.
CRI = re.compile(r"^(?P<time>[^ ]+) (?P<stream>stdout|stderr) (?P<logtag>[^ ]*) (?P<message>.*)$")


def _json_parser_settings() -> dict[str, str]:
    text = CHART.read_text(encoding="utf-8")
    outer = re.search(r"<parse>\s*@type cri(?P<body>.*?)</parse>\s*</parse>", text, re.S)
    assert outer, "the DaemonSet must parse CRI lines, then JSON inside them"
    inner = re.search(r"<parse>\s*@type json(?P<body>.*?)</parse>", outer.group(0), re.S)
    assert inner, "the container line must be parsed as JSON"
    return dict(
        line.strip().split(None, 1)
        for line in inner.group("body").strip().splitlines()
        if line.strip()
    )


def _ruby_to_python(fmt: str) -> str:
    return fmt.replace("%L", "%f")


def _our_lines() -> list[str]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("api"))
    logger = logging.getLogger("test.fluentd")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    ctx = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, False, TraceFlags(1))
    with use_span(NonRecordingSpan(ctx)):
        logger.info("주문 접수", extra={"order_id": "o-1", "quantity": 2})
        try:
            raise ValueError("재고 없음\nsecond line")
        except ValueError:
            logger.exception("order failed")
    logger.warning("outside any span")
    return stream.getvalue().splitlines()


def _through_fluentd(container_line: str, settings: dict[str, str]) -> dict[str, object]:
    cri_line = f"2026-11-25T12:00:00.123456789Z stdout F {container_line}"
    match = CRI.match(cri_line)
    assert match, cri_line
    record: dict[str, object] = json.loads(match.group("message"))
    time_key = settings["time_key"]
    event_time = datetime.strptime(str(record[time_key]), _ruby_to_python(settings["time_format"]))
    assert event_time.tzinfo is not None
    if settings.get("keep_time_key") != "true":
        record.pop(time_key)
    return record


def test_every_line_parses_into_fields_with_its_event_time() -> None:
    settings = _json_parser_settings()
    lines = _our_lines()

    records = [_through_fluentd(line, settings) for line in lines]

    assert len(lines) == 3  # a traceback stays inside its one JSON line
    assert records[0]["message"] == "주문 접수"
    assert records[0]["order_id"] == "o-1"
    assert records[0]["quantity"] == 2
    assert records[0]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert records[0]["span_id"] == "00f067aa0ba902b7"
    assert records[1]["level"] == "ERROR"
    assert "재고 없음" in str(records[1]["exception"])
    assert records[2]["trace_id"] == ""
    assert {"ts", "level", "service", "logger", "message", "trace_id", "span_id"} <= set(records[2])


def test_a_line_that_is_not_json_is_not_silently_reshaped() -> None:
    with pytest.raises(json.JSONDecodeError):
        _through_fluentd("plain text from a crashing interpreter", _json_parser_settings())
