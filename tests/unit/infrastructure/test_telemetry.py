"""Spans are recorded only where they go somewhere."""

from __future__ import annotations

from opentelemetry.sdk.trace.sampling import ParentBased

from services.infrastructure.telemetry import default_sampler


def test_nothing_is_recorded_without_an_exporter() -> None:
    sampler = default_sampler({})
    assert isinstance(sampler, ParentBased)
    assert "AlwaysOffSampler" in sampler.get_description()


def test_an_exporter_or_an_explicit_sampler_leaves_the_choice_to_the_sdk() -> None:
    assert default_sampler({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) is None
    assert default_sampler({"OTEL_TRACES_SAMPLER": "traceidratio"}) is None
