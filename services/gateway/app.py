"""Composition of the gateway: `uvicorn services.gateway.app:app`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from services.gateway import api, handlers
from services.gateway.downstream import Downstream, ShortCache
from services.gateway.settings import GatewaySettings
from services.infrastructure.service import PeriodicJob, Runtime, create_service_app

log = logging.getLogger(__name__)

DESCRIPTION = """\
The front door of Omniroute for shop frontends, store staff and dropship partners.

**Authentication**: `Authorization: Bearer <api key>`. An admin creates keys with
`POST /v1/admin/api-keys`; a key has a role (`shop`, `store`, `partner`, `admin`) and a binding
(a channel, a store, a partner) that every request is checked against.

**Errors** are RFC 9457 `application/problem+json` with a `detail` that says what to change.
Unknown body fields are rejected (422), malformed JSON is a 400.

**Idempotency**: every `POST` that creates or changes something takes an `Idempotency-Key`
header, a new one (a random UUID, say) for every new request. The same key and body replay the
first response (with `Idempotent-Replayed: true`) for at least 24 hours; the same key with
another body is a 422; concurrent duplicates have one effect.

**Errors a schema cannot show**: some rules are about other values or requests (one line per
sku, `pay` below `buy`, `valid_to` after `valid_from`, a `hold_until` within 7 days, a
`quote_token` from pricing, a price for every sku); breaking one is a 422 whose `detail` names
it.

**Rate limits**: a token bucket per API key, sized per role; over it, a 429 with `Retry-After`.

**Webhooks** instead of polling: `POST /v1/webhooks` subscribes a URL to order and fulfillment
events. Each delivery is signed by the Standard Webhooks scheme (`webhook-id`,
`webhook-timestamp`, `webhook-signature`) with the secret shown once at creation, and is
retried with the same `webhook-id` for at least 24 hours.

**Lists** are paginated with `cursor` (the `next_cursor` of the previous page) and `limit`.

**When a service behind the gateway is down or slow**, the answer is a 503 within a bounded
time, naming the service in `unavailable`; only calls that are safe to repeat are retried.
"""


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    runtime = Runtime.build(settings, messaging=False)

    def downstream(name: str, url: str) -> Downstream:
        return Downstream(
            name,
            url,
            timeout=settings.downstream_timeout_seconds,
            connect_timeout=settings.downstream_connect_timeout_seconds,
            retries=settings.downstream_retries,
        )

    @contextlib.asynccontextmanager
    async def gateway(app: FastAPI) -> AsyncIterator[None]:
        if settings.bootstrap_admin_key is not None:
            async with runtime.unit_of_work() as uow:
                secret = settings.bootstrap_admin_key.get_secret_value()
                if await handlers.ensure_bootstrap_admin_key(secret, uow):
                    log.info("bootstrap admin key created (OMNIROUTE_BOOTSTRAP_ADMIN_KEY)")
        # A request may wait on its downstream calls (a read, then the change) before it
        # answers; its claim on an Idempotency-Key outlives that.
        lease = 3 * settings.downstream_timeout_seconds + 5
        app.state.gateway = state = handlers.Gateway(
            inventory=downstream("inventory", settings.inventory_url),
            pricing=downstream("pricing", settings.pricing_url),
            orders=downstream("orders", settings.orders_url),
            webhooks=downstream("webhooks", settings.webhooks_url),
            authenticator=handlers.Authenticator(
                runtime.unit_of_work, settings.api_key_cache_seconds
            ),
            rate_limiter=handlers.RateLimiter(
                settings.rate_limit_for, settings.failed_authentication_limit
            ),
            idempotency=handlers.Idempotency(
                runtime.unit_of_work, lease_seconds=lease, wait_seconds=lease
            ),
            operations_timeout=settings.operations_timeout_seconds,
            outbox_delay=settings.operations_outbox_delay_seconds,
            availability=ShortCache("availability", settings.availability_cache_seconds),
        )
        try:
            yield
        finally:
            await state.aclose()

    async def purge() -> int:
        async with runtime.unit_of_work() as uow:
            return await handlers.purge_idempotency_records(
                uow, settings.idempotency_retention_hours
            )

    app = create_service_app(
        runtime,
        title="Omniroute",
        description=DESCRIPTION,
        routers=[api.router],
        resources=[gateway],
        jobs=[PeriodicJob("idempotency-purge", 600.0, purge)],
    )
    _document_replays(app)
    return app


def _document_replays(app: FastAPI) -> None:
    """Every changing request may be a replay: say so on each of their success responses."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for path, item in schema["paths"].items():
                for code, response in item.get("post", {}).get("responses", {}).items():
                    if path.startswith("/v1/") and code.startswith("2"):
                        response.setdefault("headers", {})["Idempotent-Replayed"] = {
                            "description": "`true` when this is the stored answer to an earlier "
                            "request with the same Idempotency-Key.",
                            "schema": {"type": "string", "enum": ["true"]},
                        }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def __getattr__(name: str) -> FastAPI:
    # `uvicorn services.gateway.app:app` builds the app on first access, not at import.
    if name == "app":
        return create_app()
    raise AttributeError(name)
