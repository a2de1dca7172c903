"""Dropship partners: the fulfillments routed to them, and their stock feed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response

from services.contracts.base import Identifier
from services.contracts.inventory import (
    LocationType,
    StockFeedIn,
    StockFeedResult,
)
from services.contracts.orders import (
    Fulfillment,
    FulfillmentPage,
    FulfillmentStatus,
    RejectIn,
    ShipIn,
)
from services.gateway import examples
from services.gateway.api.common import (
    PARTNER,
    Gateway,
    IdempotencyKey,
    Limit,
    PathId,
    QueueCursor,
    fulfillment_step,
    payload,
    query,
    respond,
    role,
)
from services.gateway.domain import Principal
from services.gateway.downstream import Downstream
from services.infrastructure.errors import BadGateway, Conflict, Forbidden

router = APIRouter()


# Partners


@router.get(
    "/partner/fulfillments",
    tags=["partners"],
    response_model=FulfillmentPage,
    responses={200: examples.response(examples.FULFILLMENT_PAGE)},
)
async def partner_queue(
    request: Request,
    principal: Annotated[Principal, role(PARTNER, to="list partner fulfillments")],
    gateway: Gateway,
    status: FulfillmentStatus | None = None,
    cursor: QueueCursor = None,
    limit: Limit = 50,
) -> Response:
    """The fulfillments routed to this partner, oldest first."""
    reply = await gateway.orders.call(
        "GET",
        f"/partners/{principal.partner_id}/fulfillments",
        params=query(status=status, cursor=cursor, limit=limit),
        safe_to_retry=True,
    )
    return respond(reply, request)


@router.post(
    "/partner/fulfillments/{fulfillment_id}/accept",
    tags=["partners"],
    response_model=Fulfillment,
    responses={200: examples.response(examples.FULFILLMENT_ACCEPTED)},
)
async def partner_accept(
    request: Request,
    principal: Annotated[Principal, role(PARTNER, to="accept partner fulfillments")],
    gateway: Gateway,
    fulfillment_id: PathId,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """The partner takes the fulfillment on."""
    return await fulfillment_step(
        request, gateway, principal, idempotency_key, fulfillment_id, "accept"
    )


@router.post(
    "/partner/fulfillments/{fulfillment_id}/reject",
    tags=["partners"],
    response_model=Fulfillment,
    responses={200: examples.response(examples.FULFILLMENT_REJECTED)},
)
async def partner_reject(
    request: Request,
    principal: Annotated[Principal, role(PARTNER, to="reject partner fulfillments")],
    gateway: Gateway,
    fulfillment_id: PathId,
    body: Annotated[RejectIn, Body(openapi_examples=examples.request(*examples.REJECT_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """The partner cannot fulfil it: the lines are routed again, elsewhere."""
    return await fulfillment_step(
        request, gateway, principal, idempotency_key, fulfillment_id, "reject", body
    )


@router.post(
    "/partner/fulfillments/{fulfillment_id}/ship",
    tags=["partners"],
    response_model=Fulfillment,
    responses={200: examples.response(examples.FULFILLMENT_SHIPPED)},
)
async def partner_ship(
    request: Request,
    principal: Annotated[Principal, role(PARTNER, to="ship partner fulfillments")],
    gateway: Gateway,
    fulfillment_id: PathId,
    body: Annotated[ShipIn, Body(openapi_examples=examples.request(examples.SHIP_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Shipped by the partner: the stock is committed."""
    return await fulfillment_step(
        request, gateway, principal, idempotency_key, fulfillment_id, "ship", body
    )


@router.put(
    "/partner/stock",
    tags=["partners"],
    response_model=StockFeedResult,
    responses={200: examples.response(examples.STOCK_FEED_RESULT)},
)
async def partner_stock(
    request: Request,
    principal: Annotated[Principal, role(PARTNER, to="feed partner stock")],
    gateway: Gateway,
    body: Annotated[StockFeedIn, Body(openapi_examples=examples.request(examples.STOCK_FEED_IN))],
    location_id: Annotated[
        Identifier | None,
        Query(description="Which of the partner's locations, when it has more than one."),
    ] = None,
) -> Response:
    """The partner's absolute stock: `on_hand` per sku. A feed with an older `sequence` than
    the last one applied is ignored, so late or repeated feeds do no harm."""
    target = await _partner_location(gateway.inventory, principal, location_id)
    reply = await gateway.inventory.call(
        "PUT", f"/locations/{target}/stock-feed", json=payload(body), safe_to_retry=True
    )
    return respond(reply, request)


async def _partner_location(
    inventory: Downstream, principal: Principal, location_id: str | None
) -> str:
    reply = await inventory.call(
        "GET", "/locations", params={"type": LocationType.DROPSHIP.value}, safe_to_retry=True
    )
    if not reply.ok:
        raise BadGateway(f"inventory could not list locations (HTTP {reply.status})")
    own = sorted(
        location["location_id"]
        for location in reply.json()
        if location.get("partner_id") == principal.partner_id
    )
    if location_id is not None:
        if location_id not in own:
            raise Forbidden(f"location {location_id} is not one of {principal.describe()}")
        return location_id
    if not own:
        raise Conflict(
            f"partner {principal.partner_id} has no dropship location yet; an admin creates one "
            "with POST /v1/admin/locations (type dropship, with this partner_id)"
        )
    if len(own) > 1:
        raise Conflict(
            f"partner {principal.partner_id} has several locations ({', '.join(own)}); "
            "name one with ?location_id="
        )
    return own[0]
