"""JSON logs, one object per line, ready for Fluentd → Elasticsearch.

Every line has ts, level, service, logger, message, trace_id and span_id (empty outside a span);
fields passed with ``extra=`` are kept as top-level keys.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from opentelemetry import trace

# Attributes every LogRecord has; anything else came from ``extra=`` and is logged as a field.
_RECORD_ATTRS: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "color_message"}
)

#: The service a line belongs to, when several share one process (the local launcher sets it per
#: server task; tasks inherit it). Unset, the formatter's own service name is used.
current_service: ContextVar[str | None] = ContextVar("current_service", default=None)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        ctx = trace.get_current_span().get_span_context()
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": current_service.get() or self.service,
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": format(ctx.trace_id, "032x") if ctx.is_valid else "",
            "span_id": format(ctx.span_id, "016x") if ctx.is_valid else "",
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(service: str, level: str, stream: TextIO | None = None) -> None:
    """Route the root logger (and uvicorn's) through one JSON handler."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uv_logger = logging.getLogger(name)
        uv_logger.handlers[:] = []
        uv_logger.propagate = True
    # aiokafka logs every reconnect attempt at ERROR while a broker is down; readiness says it once.
    logging.getLogger("aiokafka").setLevel(max(logging.getLevelName(level), logging.WARNING))
