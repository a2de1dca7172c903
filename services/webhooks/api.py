"""Webhooks' internal HTTP API (the gateway fronts it, and says whose webhooks a caller may see
with `owner`): thin routes over the handlers and views."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from services.contracts.webhooks import (
    DeliveryCursor,
    DeliveryPage,
    DeliveryStatus,
    SubscribeWebhook,
    Webhook,
    WebhookCreated,
    WebhookDelivery,
    WebhookList,
)
from services.infrastructure.errors import PROBLEM_RESPONSES
from services.webhooks import handlers, views
from services.webhooks.sender import AddressGuard

router = APIRouter(responses=PROBLEM_RESPONSES, tags=["webhooks"])


async def unit_of_work(request: Request) -> handlers.WebhooksUnitOfWork:
    factory = request.app.state.unit_of_work
    uow: handlers.WebhooksUnitOfWork = factory()
    return uow


async def address_guard(request: Request) -> AddressGuard:
    guard: AddressGuard = request.app.state.address_guard
    return guard


UoW = Annotated[handlers.WebhooksUnitOfWork, Depends(unit_of_work)]
Guard = Annotated[AddressGuard, Depends(address_guard)]
Owner = Annotated[
    str | None,
    Query(
        pattern=r"^(admin|shop:[A-Za-z0-9._\-:]{1,64}|partner:[A-Za-z0-9._\-:]{1,64})$",
        description="Only this owner's webhooks (the caller's binding); none: every webhook.",
    ),
]
WebhookId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-:]{0,63}$")]


@router.post("/webhooks", status_code=201)
async def subscribe(body: SubscribeWebhook, uow: UoW, guard: Guard) -> WebhookCreated:
    """Create a webhook; the answer holds its signing secret, shown this once."""
    await guard.check_url(str(body.url))
    async with uow:
        return await handlers.subscribe(body, uow)


@router.get("/webhooks")
async def list_webhooks(uow: UoW, owner: Owner = None) -> WebhookList:
    """The owner's webhooks, oldest first (no secrets)."""
    async with uow:
        return await views.webhooks_of(uow.connection, owner)


@router.get("/webhooks/{webhook_id}")
async def get_webhook(webhook_id: WebhookId, uow: UoW, owner: Owner = None) -> Webhook:
    """One webhook, with its status (and why, when it was disabled)."""
    async with uow:
        return await views.webhook(uow.connection, webhook_id, owner)


@router.delete("/webhooks/{webhook_id}")
async def delete_webhook(webhook_id: WebhookId, uow: UoW, owner: Owner = None) -> Webhook:
    """Delete a webhook and its delivery log; the answer is the webhook as it was."""
    async with uow:
        return await handlers.unsubscribe(webhook_id, owner, uow)


@router.get("/webhooks/{webhook_id}/deliveries")
async def list_deliveries(
    webhook_id: WebhookId,
    uow: UoW,
    owner: Owner = None,
    status: DeliveryStatus | None = None,
    cursor: Annotated[DeliveryCursor | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DeliveryPage:
    """The webhook's deliveries, newest first: attempts, last status and error."""
    async with uow:
        return await views.deliveries(
            uow.connection, webhook_id, owner, status=status, cursor=cursor, limit=limit
        )


@router.post("/webhooks/{webhook_id}/deliveries/{delivery_id}/retry", status_code=202)
async def retry_delivery(
    webhook_id: WebhookId, delivery_id: WebhookId, uow: UoW, owner: Owner = None
) -> WebhookDelivery:
    """Send a delivery again now, with the same `webhook-id`."""
    async with uow:
        return await handlers.send_again(webhook_id, delivery_id, owner, uow)
