"""OpenTelemetry bootstrap: traces for FastAPI, FastStream (via its middleware) and asyncpg.

No exporter by default; OTLP over HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. All other
`OTEL_*` variables are honoured by the SDK itself.

Without an exporter, spans are not recorded (unless `OTEL_TRACES_SAMPLER` says otherwise): they
would go nowhere, and recording them cost about a third of a service's CPU per request in
profiles. Trace context is still created and propagated, so logs keep their trace ids.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler


def configure_tracing(service: str) -> None:
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return  # already configured (tests install their own provider first)
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: f"omniroute-{service}"}),
        sampler=default_sampler(os.environ),
    )
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def default_sampler(environ: Mapping[str, str]) -> Sampler | None:
    """Record nothing when nothing is exported; otherwise (None) the SDK's choice, which follows
    `OTEL_TRACES_SAMPLER` and defaults to recording every trace."""
    if environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_TRACES_SAMPLER"):
        return None
    return ParentBased(ALWAYS_OFF)


def instrument(app: FastAPI) -> None:
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    # The driver, not the ORM: it sees every query whatever builds it (the SQLAlchemy
    # instrumentation lags SQLAlchemy releases).
    instrumentor = AsyncPGInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
