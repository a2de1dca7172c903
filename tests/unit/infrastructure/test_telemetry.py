"""Tracing is on only where spans go somewhere: the instrumentation costs CPU per request even
when it records nothing."""

from __future__ import annotations

from services.infrastructure.telemetry import tracing_wanted


def test_without_an_exporter_or_a_sampler_tracing_is_off() -> None:
    assert not tracing_wanted({})
    assert not tracing_wanted({"OTEL_SERVICE_NAME": "omniroute-gateway"})


def test_an_exporter_or_an_explicit_sampler_turns_it_on() -> None:
    assert tracing_wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing_wanted({"OTEL_TRACES_SAMPLER": "parentbased_always_on"})
