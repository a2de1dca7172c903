"""Orders' internal HTTP API (the gateway fronts it): thin routes over handlers and views."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request

from services.contracts.base import Identifier, Sku
from services.contracts.orders import (
    CancelIn,
    Fulfillment,
    FulfillmentPage,
    FulfillmentStatus,
    Order,
    OrderAccepted,
    OrderAfterCancel,
    PickupStoreIn,
    PlaceOrder,
    QueueCursor,
    RejectIn,
    Return,
    ReturnIn,
    ReturnPreview,
    RoutingDecision,
    ShipIn,
)
from services.infrastructure.errors import PROBLEM_RESPONSES
from services.orders import handlers, views
from services.orders.handlers.returns import preview_return
from services.orders.repository import OrdersUnitOfWork

router = APIRouter(responses=PROBLEM_RESPONSES)


async def policy(request: Request) -> handlers.Policy:
    found: handlers.Policy = request.app.state.policy
    return found


async def unit_of_work(request: Request) -> OrdersUnitOfWork:
    """A fresh unit of work with orders' repositories."""
    return request.app.state.runtime.unit_of_work()


UoW = Annotated[OrdersUnitOfWork, Depends(unit_of_work)]
Policy = Annotated[handlers.Policy, Depends(policy)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Repeat a request safely.",
    ),
]
Cursor = Annotated[QueueCursor | None, Query()]
Limit = Annotated[int, Query(ge=1, le=200)]


@router.post("/orders", status_code=202, tags=["orders"])
async def place_order(
    body: PlaceOrder, uow: UoW, policy: Policy, idempotency_key: IdempotencyKey = None
) -> OrderAccepted:
    """Accept an order for a quote; routing and reservation follow asynchronously."""
    async with uow:
        return await handlers.place_order(body, idempotency_key, uow, policy)


@router.get("/orders/{order_id}", tags=["orders"])
async def get_order(order_id: Identifier, uow: UoW) -> Order:
    """The order with its price snapshot, fulfillments and totals."""
    async with uow:
        return await views.order(uow.connection, order_id)


@router.get("/orders/{order_id}/routing", tags=["orders"])
async def get_routing(order_id: Identifier, uow: UoW) -> RoutingDecision:
    """Every routing of the order: candidates, scores, rules, the chosen plan, and re-routes."""
    async with uow:
        return await views.routing_decision(uow.connection, order_id)


@router.post("/orders/{order_id}/cancel", tags=["orders"])
async def cancel_order(
    order_id: Identifier,
    uow: UoW,
    body: CancelIn | None = None,
    idempotency_key: IdempotencyKey = None,
) -> OrderAfterCancel:
    """Cancel the order and release its stock (not once anything shipped or was collected); with
    `lines`, only those units, and `refund` is what they were paid. A partial cancel repeated
    with the same `Idempotency-Key` is answered as before and cancels nothing more."""
    async with uow:
        refund = await handlers.cancel(order_id, body or CancelIn(), uow, idempotency_key)
    async with uow:
        order = await views.order(uow.connection, order_id)
    return OrderAfterCancel(**dict(order), refund=refund)


@router.post("/orders/{order_id}/pickup-store", tags=["orders"])
async def change_pickup_store(
    order_id: Identifier, body: PickupStoreIn, uow: UoW, policy: Policy
) -> Order:
    """Collect at another store before the order is ready: the new store's reservation holds
    before the old one is released; a 409 says why when the new store cannot serve it."""
    async with uow:
        await handlers.change_pickup_store(order_id, body.store_id, uow, policy)
    async with uow:
        return await views.order(uow.connection, order_id)


@router.get("/routing/sites", tags=["orders"])
async def routing_sites(
    uow: UoW, sku: Annotated[list[Sku], Query(min_length=1, max_length=100)]
) -> list[dict[str, object]]:
    """What routing sees right now: every location with its projected availability of these
    skus and the ship capacity it has left today."""
    async with uow:
        return await views.sites(uow.connection, sku)


@router.get("/fulfillments/{fulfillment_id}", tags=["fulfillments"])
async def get_fulfillment(fulfillment_id: Identifier, uow: UoW) -> Fulfillment:
    """One fulfillment."""
    async with uow:
        return await views.fulfillment(uow.connection, fulfillment_id)


@router.get("/stores/{store_id}/fulfillments", tags=["fulfillments"])
async def store_queue(
    store_id: Identifier,
    uow: UoW,
    status: FulfillmentStatus | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> FulfillmentPage:
    """A store's work queue: what it ships, and what customers collect there."""
    async with uow:
        return await views.queue(
            uow.connection, store_id=store_id, status=status, cursor=cursor, limit=limit
        )


@router.get("/partners/{partner_id}/fulfillments", tags=["fulfillments"])
async def partner_queue(
    partner_id: Identifier,
    uow: UoW,
    status: FulfillmentStatus | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> FulfillmentPage:
    """Fulfillments routed to a dropship partner's locations."""
    async with uow:
        return await views.queue(
            uow.connection, partner_id=partner_id, status=status, cursor=cursor, limit=limit
        )


async def _after(fulfillment_id: str, uow: OrdersUnitOfWork) -> Fulfillment:
    async with uow:
        return await views.fulfillment(uow.connection, fulfillment_id)


@router.post("/fulfillments/{fulfillment_id}/ready", tags=["fulfillments"])
async def ready(fulfillment_id: Identifier, uow: UoW, policy: Policy) -> Fulfillment:
    """Picked and waiting for the customer (click & collect, click & reserve)."""
    async with uow:
        await handlers.mark_ready(fulfillment_id, uow, policy)
    return await _after(fulfillment_id, uow)


@router.post("/fulfillments/{fulfillment_id}/handover", tags=["fulfillments"])
async def handover(fulfillment_id: Identifier, uow: UoW) -> Fulfillment:
    """Collected by the customer; the stock is committed."""
    async with uow:
        await handlers.hand_over(fulfillment_id, uow)
    return await _after(fulfillment_id, uow)


@router.post("/fulfillments/{fulfillment_id}/ship", tags=["fulfillments"])
async def ship(fulfillment_id: Identifier, body: ShipIn, uow: UoW) -> Fulfillment:
    """Handed to a carrier; the stock is committed."""
    async with uow:
        await handlers.ship(fulfillment_id, body, uow)
    return await _after(fulfillment_id, uow)


@router.post("/fulfillments/{fulfillment_id}/accept", tags=["fulfillments"])
async def accept(fulfillment_id: Identifier, uow: UoW) -> Fulfillment:
    """A dropship partner takes the fulfillment on."""
    async with uow:
        await handlers.accept(fulfillment_id, uow)
    return await _after(fulfillment_id, uow)


@router.post("/fulfillments/{fulfillment_id}/reject", tags=["fulfillments"])
async def reject(
    fulfillment_id: Identifier, body: RejectIn, uow: UoW, policy: Policy
) -> Fulfillment:
    """Cannot fulfil (short pick, partner refusal): the lines are routed again elsewhere; a
    `not_in_stock` or `damaged` code corrects the location's stock too."""
    async with uow:
        await handlers.reject(fulfillment_id, body.reason, uow, policy, body.code)
    return await _after(fulfillment_id, uow)


@router.post("/returns", status_code=201, tags=["returns"])
async def accept_return(body: ReturnIn, uow: UoW, idempotency_key: IdempotencyKey = None) -> Return:
    """A return in store: the refund is what those units were paid; resellable ones restock."""
    async with uow:
        return await handlers.accept_return(body, idempotency_key, uow)


# Not `/returns/preview`: `GET /returns/{return_id}` would serve that path too (as a return id).
@router.post("/return-previews", tags=["returns"])
async def preview_return_refund(body: ReturnIn, uow: UoW) -> ReturnPreview:
    """What this return would refund if taken now, by the same rules and with the same refusals
    as `POST /returns`; nothing is stored."""
    async with uow:
        return await preview_return(body, uow)


@router.get("/returns/{return_id}", tags=["returns"])
async def get_return(return_id: Identifier, uow: UoW) -> Return:
    """One return."""
    async with uow:
        return await views.return_(uow.connection, return_id)


# The command center's figures (services/orders/operations.py).
from services.orders import operations  # noqa: E402

router.include_router(operations.router)
