"""OpenTelemetry bootstrap: traces for FastAPI, FastStream (via its middleware) and asyncpg.

No exporter by default; OTLP over HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. All other
`OTEL_*` variables are honoured by the SDK itself.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def configure_tracing(service: str) -> None:
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return  # already configured (tests install their own provider first)
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: f"omniroute-{service}"}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def instrument(app: FastAPI) -> None:
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    # The driver, not the ORM: it sees every query whatever builds it (the SQLAlchemy
    # instrumentation lags SQLAlchemy releases).
    instrumentor = AsyncPGInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
