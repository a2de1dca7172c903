"""Pricing running for real: its app with its lifespan against the session's PostgreSQL and
broker, reached over HTTP (in-process ASGI)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from services.contracts import topics
from services.pricing.app import create_app
from services.pricing.settings import PricingSettings
from tests.conftest import TEST_KAFKA_SETTINGS
from tests.support.kafka import TopicWatcher

pytestmark = pytest.mark.integration

SIGNING_KEYS = (
    "it-new:integration-test-signing-key-0123456789,it-old:older-integration-key-0123456789"
)


@pytest.fixture(scope="session")
def pricing_settings(
    create_service_database: Callable[[str], str], kafka_bootstrap: str
) -> PricingSettings:
    return PricingSettings(
        database_url=create_service_database("pricing"),
        kafka_bootstrap_servers=kafka_bootstrap,
        outbox_poll_interval_seconds=0.2,
        quote_signing_keys=SIGNING_KEYS,
        log_format="console",
        **TEST_KAFKA_SETTINGS,
    )


@pytest.fixture(scope="session")
async def pricing(pricing_settings: PricingSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(pricing_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://pricing") as client:
            yield client


@pytest.fixture(scope="session")
async def pricing_events(kafka_bootstrap: str) -> AsyncIterator[TopicWatcher]:
    watcher = TopicWatcher(kafka_bootstrap, topics.PRICING_EVENTS.name)
    await watcher.start()
    yield watcher
    await watcher.stop()
