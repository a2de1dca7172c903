"""Log lines are JSON and carry the trace and span they were written in."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from services.infrastructure.logs import configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_log_line_names_its_trace(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("inventory", "INFO", "json")
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("reserve") as span:
        logging.getLogger("services.inventory").info("reserved %d units", 3)
    logging.getLogger("services.inventory").info("outside any span")

    inside, outside = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    context = span.get_span_context()
    assert inside["message"] == "reserved 3 units"
    assert inside["service"] == "inventory"
    assert inside["level"] == "INFO"
    assert inside["trace_id"] == format(context.trace_id, "032x")
    assert inside["span_id"] == format(context.span_id, "016x")
    assert outside["trace_id"] is None
