"""A gateway of a test's own, in front of whatever URLs the test gives it (stand-ins, or
nothing at all), on the session's real PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings

ADMIN_KEY = "omr_integration_admin_key_0123456789"
TIMEOUT = 2.0
RETRIES = 2

GatewayWith = Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
async def gateway_with(
    create_service_database: Callable[[str], str],
) -> AsyncIterator[GatewayWith]:
    database_url = create_service_database("gateway")

    @contextlib.asynccontextmanager
    async def start(**urls: str) -> AsyncIterator[httpx.AsyncClient]:
        settings = GatewaySettings(
            database_url=database_url,
            bootstrap_admin_key=ADMIN_KEY,
            downstream_timeout_seconds=TIMEOUT,
            downstream_retries=RETRIES,
            log_format="console",
            **urls,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://gateway", headers=headers
            ) as client:
                yield client

    return start
