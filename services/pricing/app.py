"""Composition of the pricing service: `uvicorn services.pricing.app:app`."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from services.contracts import topics
from services.infrastructure.quote_tokens import SigningKeys
from services.infrastructure.service import Runtime, create_service_app
from services.pricing import api, db, handlers
from services.pricing.settings import PricingSettings


def create_app(settings: PricingSettings | None = None) -> FastAPI:
    settings = settings or PricingSettings()
    runtime = Runtime.build(settings)
    app = create_service_app(
        runtime,
        title="Omniroute pricing",
        description="One price engine for every channel: the price book (base and channel "
        "prices), promotions (percent and amount off, buy N pay M, tiered, bundles) and signed "
        "quotes. Internal API: the gateway fronts it. Publishes pricing.events.v1.",
        routers=[api.router],
        topics=topics.ALL_TOPICS,
    )
    app.state.signing_keys = SigningKeys.parse(settings.quote_signing_keys)
    app.state.quoting = handlers.Quoting(
        engine=runtime.engine,
        writer=db.QuoteWriter(runtime.engine),
        keys=app.state.signing_keys,
        ttl=timedelta(seconds=settings.quote_ttl_seconds),
    )
    return app


def __getattr__(name: str) -> FastAPI:
    # Built on first access (by uvicorn), so importing this module needs no database or broker.
    if name == "app":
        return create_app()
    raise AttributeError(name)
