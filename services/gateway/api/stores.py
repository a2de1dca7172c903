"""Store work: the fulfillment queue and its steps, stock adjustments, returns in store."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Request, Response

from services.contracts.inventory import (
    StockAdjustmentIn,
    StockLevel,
)
from services.contracts.orders import (
    Fulfillment,
    FulfillmentPage,
    FulfillmentStatus,
    RejectIn,
    Return,
    ReturnIn,
    ReturnPreview,
    ShipIn,
)
from services.gateway import domain, examples
from services.gateway.api.common import (
    ADMIN,
    PARTNER,
    STORE,
    Caller,
    Gateway,
    IdempotencyKey,
    Limit,
    PathId,
    QueueCursor,
    deny_if,
    fulfillment_step,
    once,
    own_fulfillment,
    payload,
    query,
    respond,
    role,
)
from services.gateway.domain import Principal
from services.gateway.downstream import Reply

router = APIRouter()


async def acting_for_store(principal: Caller, store_id: PathId) -> Principal:
    """Store staff of this store, or an admin: checked before the body is."""
    deny_if(domain.store_denial(principal, store_id))
    return principal


StoreStaff = Annotated[Principal, Depends(acting_for_store)]


# Fulfillments: the store's and the partner's work


@router.get(
    "/stores/{store_id}/fulfillments",
    tags=["stores"],
    response_model=FulfillmentPage,
    responses={200: examples.response(examples.FULFILLMENT_PAGE)},
)
async def store_queue(
    request: Request,
    principal: StoreStaff,
    gateway: Gateway,
    store_id: PathId,
    status: FulfillmentStatus | None = None,
    cursor: QueueCursor = None,
    limit: Limit = 50,
) -> Response:
    """The store's work queue, oldest first: what it ships and what is collected there."""
    reply = await gateway.orders.call(
        "GET",
        f"/stores/{store_id}/fulfillments",
        params=query(status=status, cursor=cursor, limit=limit),
        safe_to_retry=True,
    )
    return respond(reply, request)


@router.get(
    "/fulfillments/{fulfillment_id}",
    tags=["stores"],
    response_model=Fulfillment,
    responses={200: examples.response(examples.FULFILLMENT)},
)
async def get_fulfillment(
    request: Request, principal: Caller, gateway: Gateway, fulfillment_id: PathId
) -> Response:
    """One fulfillment of the store's or the partner's own."""
    reply = await own_fulfillment(gateway, principal, fulfillment_id)
    return respond(reply, request)


@router.post(
    "/fulfillments/{fulfillment_id}/ready",
    tags=["stores"],
    response_model=Fulfillment,
    responses={200: examples.response(examples.FULFILLMENT)},
)
async def ready(
    request: Request,
    principal: Annotated[
        Principal, role(STORE, PARTNER, ADMIN, to="mark fulfillments ready for pickup")
    ],
    gateway: Gateway,
    fulfillment_id: PathId,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Picked and waiting for the customer (click & collect, click & reserve)."""
    return await fulfillment_step(
        request, gateway, principal, idempotency_key, fulfillment_id, "ready"
    )


@router.post(
    "/fulfillments/{fulfillment_id}/handover",
    tags=["stores"],
    response_model=Fulfillment,
    responses={200: examples.response(examples.FULFILLMENT_PICKED_UP)},
)
async def handover(
    request: Request,
    principal: Annotated[Principal, role(STORE, PARTNER, ADMIN, to="hand over fulfillments")],
    gateway: Gateway,
    fulfillment_id: PathId,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Collected by the customer: the order completes and the stock is committed."""
    return await fulfillment_step(
        request, gateway, principal, idempotency_key, fulfillment_id, "handover"
    )


@router.post(
    "/fulfillments/{fulfillment_id}/ship",
    tags=["stores"],
    response_model=Fulfillment,
    responses={200: examples.response(examples.FULFILLMENT_SHIPPED)},
)
async def ship(
    request: Request,
    principal: Annotated[Principal, role(STORE, PARTNER, ADMIN, to="ship fulfillments")],
    gateway: Gateway,
    fulfillment_id: PathId,
    body: Annotated[ShipIn, Body(openapi_examples=examples.request(examples.SHIP_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Handed to a carrier: the stock is committed."""
    return await fulfillment_step(
        request, gateway, principal, idempotency_key, fulfillment_id, "ship", body
    )


@router.post(
    "/fulfillments/{fulfillment_id}/reject",
    tags=["stores"],
    response_model=Fulfillment,
    responses={200: examples.response(examples.FULFILLMENT_REJECTED)},
)
async def reject(
    request: Request,
    principal: Annotated[Principal, role(STORE, PARTNER, ADMIN, to="reject fulfillments")],
    gateway: Gateway,
    fulfillment_id: PathId,
    body: Annotated[RejectIn, Body(openapi_examples=examples.request(*examples.REJECT_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Cannot fulfil it (a short pick): the lines are routed again, elsewhere."""
    return await fulfillment_step(
        request, gateway, principal, idempotency_key, fulfillment_id, "reject", body
    )


@router.post(
    "/stores/{store_id}/stock-adjustments",
    tags=["stores"],
    response_model=StockLevel,
    responses={200: examples.response(examples.STOCK_LEVEL)},
)
async def adjust_stock(
    request: Request,
    principal: StoreStaff,
    gateway: Gateway,
    store_id: PathId,
    body: Annotated[
        StockAdjustmentIn, Body(openapi_examples=examples.request(*examples.ADJUSTMENTS_IN))
    ],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A POS sale, a receipt, a count correction or damage, recorded in the movement ledger."""
    adjustment = payload(body)

    async def adjust(downstream_key: str) -> Reply:
        # Inventory finds a repeat by its key in the movement ledger, so a retry is harmless.
        return await gateway.inventory.call(
            "POST",
            f"/locations/{store_id}/stock-adjustments",
            json=adjustment,
            headers={"Idempotency-Key": downstream_key},
            safe_to_retry=True,
        )

    return await once(request, gateway, principal, idempotency_key, adjustment, adjust)


@router.post(
    "/returns",
    status_code=201,
    tags=["stores"],
    response_model=Return,
    responses={201: examples.response(examples.RETURN)},
)
async def accept_return(
    request: Request,
    principal: Caller,
    gateway: Gateway,
    body: Annotated[ReturnIn, Body(openapi_examples=examples.request(examples.RETURN_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A return in store: the refund is exactly what those units were paid (a free unit of a
    "3 for 2" refunds what it really cost); resellable units go back into this store's stock."""
    deny_if(domain.store_denial(principal, body.store_id))
    return_ = payload(body)

    async def take_back(downstream_key: str) -> Reply:
        return await gateway.orders.call(
            "POST",
            "/returns",
            json=return_,
            headers={"Idempotency-Key": downstream_key},
            safe_to_retry=True,
        )

    return await once(request, gateway, principal, idempotency_key, return_, take_back)


@router.post(
    "/returns/preview",
    tags=["stores"],
    response_model=ReturnPreview,
    responses={200: examples.response(examples.RETURN_PREVIEW)},
)
async def preview_return(
    request: Request,
    principal: Caller,
    gateway: Gateway,
    body: Annotated[ReturnIn, Body(openapi_examples=examples.request(examples.RETURN_IN))],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            description="Taken, as by every POST, and of no effect: a preview changes nothing, "
            "so each one is answered afresh, never replayed.",
        ),
    ] = None,
) -> Response:
    """What a return would refund if it were taken now, before the customer confirms it: the
    same rules, and the same refusals, as `POST /v1/returns`; nothing is stored."""
    deny_if(domain.store_denial(principal, body.store_id))
    reply = await gateway.orders.call(
        "POST", "/return-previews", json=payload(body), safe_to_retry=True
    )
    return respond(reply, request)
