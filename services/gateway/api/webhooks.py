"""Webhooks (DESIGN.md §8.2): partners, shops and admins subscribe to order and fulfillment
events instead of polling. A webhook belongs to the caller's binding, and hears only of what
that binding may read; the webhooks service behind does the sending."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response

from services.contracts.webhooks import (
    DeliveryCursor,
    DeliveryPage,
    DeliveryStatus,
    Subscriber,
    Webhook,
    WebhookCreated,
    WebhookDelivery,
    WebhookIn,
    WebhookList,
)
from services.gateway import domain, examples, handlers
from services.gateway.api.common import (
    ADMIN,
    PARTNER,
    SHOP,
    Gateway,
    IdempotencyKey,
    Limit,
    PathId,
    payload,
    query,
    respond,
    role,
)
from services.gateway.domain import Principal
from services.gateway.downstream import Reply

router = APIRouter(tags=["webhooks"])

Subscribing = Annotated[Principal, role(SHOP, PARTNER, ADMIN, to="manage webhooks")]


def subscriber(principal: Principal) -> Subscriber:
    return Subscriber(
        role=principal.role.value,
        channel=principal.channel.value if principal.channel else None,
        partner_id=principal.partner_id,
    )


def owner(principal: Principal) -> str | None:
    """Whose webhooks the caller manages: its binding's; an admin's, everyone's."""
    return None if principal.role is ADMIN else subscriber(principal).owner


@router.post(
    "/webhooks",
    status_code=201,
    response_model=WebhookCreated,
    responses={201: examples.response(examples.WEBHOOK_CREATED)},
)
async def create_webhook(
    request: Request,
    principal: Subscribing,
    gateway: Gateway,
    body: Annotated[WebhookIn, Body(openapi_examples=examples.request(*examples.WEBHOOKS_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Subscribe `url` to events. A partner hears of its own fulfillments, a shop of its
    channel's orders, an admin of everything. The signing `secret` is in this answer only; to
    rotate it, create a new webhook and delete the old one. A URL whose host resolves to a
    link-local, metadata, private or loopback address is a 422."""
    data = payload(body)
    internal = {**data, "subscriber": subscriber(principal).model_dump(mode="json")}

    async def create(_: str) -> Reply:
        # Not retried: a second call would make a second webhook.
        return await gateway.webhooks.call("POST", "/webhooks", json=internal)

    fingerprint = domain.request_fingerprint(request.method, request.url.path, data)
    reply = await gateway.idempotency.run(
        principal,
        idempotency_key,
        f"{request.method} {request.url.path}",
        fingerprint,
        create,
        keep=handlers.without("secret"),
    )
    return respond(reply, request)


@router.get(
    "/webhooks",
    response_model=WebhookList,
    responses={200: examples.response(examples.WEBHOOK_LIST)},
)
async def list_webhooks(request: Request, principal: Subscribing, gateway: Gateway) -> Response:
    """The webhooks of the caller's binding (an admin: all), never their secrets."""
    reply = await gateway.webhooks.call(
        "GET", "/webhooks", params=query(owner=owner(principal)), safe_to_retry=True
    )
    return respond(reply, request)


@router.get(
    "/webhooks/{webhook_id}",
    response_model=Webhook,
    responses={200: examples.response(examples.WEBHOOK)},
)
async def get_webhook(
    request: Request, principal: Subscribing, gateway: Gateway, webhook_id: PathId
) -> Response:
    """One webhook: `status` is `disabled` once every delivery to it failed for a day, and
    `status_reason` says since when."""
    reply = await gateway.webhooks.call(
        "GET", f"/webhooks/{webhook_id}", params=query(owner=owner(principal)), safe_to_retry=True
    )
    return respond(reply, request)


@router.delete(
    "/webhooks/{webhook_id}",
    response_model=Webhook,
    responses={200: examples.response(examples.WEBHOOK)},
)
async def delete_webhook(
    request: Request, principal: Subscribing, gateway: Gateway, webhook_id: PathId
) -> Response:
    """Delete a webhook and its delivery log: nothing more is sent to it. The answer is the
    webhook as it was."""
    reply = await gateway.webhooks.call(
        "DELETE",
        f"/webhooks/{webhook_id}",
        params=query(owner=owner(principal)),
        safe_to_retry=True,
    )
    return respond(reply, request)


@router.get(
    "/webhooks/{webhook_id}/deliveries",
    response_model=DeliveryPage,
    responses={200: examples.response(examples.DELIVERY_PAGE)},
)
async def list_deliveries(
    request: Request,
    principal: Subscribing,
    gateway: Gateway,
    webhook_id: PathId,
    status: DeliveryStatus | None = None,
    cursor: Annotated[DeliveryCursor | None, Query()] = None,
    limit: Limit = 50,
) -> Response:
    """The webhook's deliveries, newest first: `attempts`, `last_status_code`, `last_error`,
    and for a pending one `next_attempt_at`. Kept as long as the webhook is."""
    reply = await gateway.webhooks.call(
        "GET",
        f"/webhooks/{webhook_id}/deliveries",
        params=query(owner=owner(principal), status=status, cursor=cursor, limit=limit),
        safe_to_retry=True,
    )
    return respond(reply, request)


@router.post(
    "/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
    status_code=202,
    response_model=WebhookDelivery,
    responses={202: examples.response(examples.DELIVERY_RETRIED)},
)
async def retry_delivery(
    request: Request,
    principal: Subscribing,
    gateway: Gateway,
    webhook_id: PathId,
    delivery_id: PathId,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Send a delivery again now, with the same `webhook-id` (a receiver that already has it
    can drop it): a delivered or failed one once, even to a disabled webhook; a pending one
    by bringing its next retry forward."""

    async def send_again(_: str) -> Reply:
        # Sending again twice only brings the same attempt forward twice.
        return await gateway.webhooks.call(
            "POST",
            f"/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
            params=query(owner=owner(principal)),
            safe_to_retry=True,
        )

    fingerprint = domain.request_fingerprint(request.method, request.url.path, None)
    reply = await gateway.idempotency.run(
        principal,
        idempotency_key,
        f"{request.method} {request.url.path}",
        fingerprint,
        send_again,
    )
    return respond(reply, request)
