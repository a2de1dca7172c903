"""OpenTelemetry bootstrap: traces for FastAPI, FastStream (via its middleware) and asyncpg.

No exporter by default; OTLP over HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. All other
`OTEL_*` variables are honoured by the SDK itself.

Without an exporter (and without `OTEL_TRACES_SAMPLER`), tracing is off: nothing is recorded
(spans would go nowhere) and the instrumentation is not even installed. Recording cost about a
third of a service's CPU per request in profiles; the ASGI middleware alone, recording nothing,
still cost 40% of the gateway's CPU on a cached read (reading the host and URL of every request).
Logs then carry no trace ids; set an exporter to have both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.aiohttp_client import create_trace_config
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def configure_tracing(service: str) -> None:
    """The SDK's tracer provider when tracing is wanted; otherwise the API's no-op one stays,
    and with it FastAPI's own telemetry stays off (it turns on for any configured provider)."""
    if not tracing_wanted() or isinstance(trace.get_tracer_provider(), TracerProvider):
        return  # off, or already configured (tests install their own provider first)
    # The sampler follows `OTEL_TRACES_SAMPLER`; by default every trace is recorded.
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: f"omniroute-{service}"}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def tracing_wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether spans go anywhere: an exporter, or a sampler chosen explicitly."""
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_TRACES_SAMPLER"))


def aiohttp_trace_configs() -> list[Any]:
    """Client spans and `traceparent` on every call, when tracing is on."""
    return [create_trace_config()] if tracing_wanted() else []


def instrument(app: FastAPI) -> None:
    if not tracing_wanted():
        return
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    # The driver, not the ORM: it sees every query whatever builds it (the SQLAlchemy
    # instrumentation lags SQLAlchemy releases).
    instrumentor = AsyncPGInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
