"""Shopping: product names, availability, quotes and orders, for shop frontends and store
tills."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response

from services.contracts.base import Sku
from services.contracts.gateway import QuoteIn
from services.contracts.inventory import (
    AvailabilityResponse,
    LocationType,
    NearQuery,
    ProductPage,
    ProductPageSize,
    ProductSearch,
)
from services.contracts.orders import (
    CancelIn,
    Order,
    OrderAccepted,
    OrderAfterCancel,
    PickupStoreIn,
    PlaceOrder,
    RoutingDecision,
)
from services.contracts.pricing import Quote
from services.gateway import domain, examples, handlers
from services.gateway.api.common import (
    ADMIN,
    PARTNER,
    SHOP,
    STORE,
    Gateway,
    IdempotencyKey,
    PathId,
    deny_if,
    once,
    payload,
    query,
    respond,
    role,
)
from services.gateway.domain import Principal, Role
from services.gateway.downstream import Reply
from services.infrastructure.errors import Forbidden

router = APIRouter()


# Stock and prices


@router.get(
    "/availability",
    tags=["stock"],
    response_model=AvailabilityResponse,
    responses={200: examples.response(examples.AVAILABILITY)},
    openapi_extra={"parameters": [NearQuery.openapi_parameter()]},
)
async def availability(
    request: Request,
    principal: Annotated[Principal, role(SHOP, STORE, ADMIN, to="look up availability")],
    gateway: Gateway,
    sku: Annotated[list[Sku], Query(min_length=1, max_length=100)],
    nearby: Annotated[NearQuery, Query(include_in_schema=False)],
    location_type: LocationType | None = None,
) -> Response:
    """Available units per sku, per location, nearest first when `near` is given; store staff
    see every location. For shop keys, an answer may be up to a second old."""
    wanted = query(
        sku=sku, near=nearby.near, radius_km=nearby.radius_km, location_type=location_type
    )

    async def ask() -> Reply:
        return await gateway.inventory.call(
            "GET", "/availability", params=wanted, safe_to_retry=True
        )

    if principal.role is Role.SHOP:
        key = tuple(sorted((name, str(value)) for name, value in wanted.items()))
        return respond(await gateway.availability.get(key, ask), request)
    return respond(await ask(), request)


@router.get(
    "/products",
    tags=["stock"],
    response_model=ProductPage,
    responses={200: examples.response(examples.PRODUCT_PAGE)},
)
async def find_products(
    request: Request,
    principal: Annotated[Principal, role(SHOP, STORE, PARTNER, ADMIN, to="look up products")],
    gateway: Gateway,
    q: Annotated[ProductSearch, Query()],
    limit: Annotated[ProductPageSize, Query()] = 20,
) -> Response:
    """Products by sku or name: those whose sku starts with `q`, or whose name has a word that
    does, in any case, by sku."""
    reply = await gateway.inventory.call(
        "GET", "/products", params={"q": q, "limit": limit}, safe_to_retry=True
    )
    return respond(reply, request)


@router.post(
    "/quotes",
    status_code=201,
    tags=["quotes"],
    response_model=Quote,
    responses={201: examples.response(examples.QUOTE)},
)
async def create_quote(
    request: Request,
    principal: Annotated[Principal, role(SHOP, STORE, PARTNER, to="ask for quotes")],
    gateway: Gateway,
    body: Annotated[QuoteIn, Body(openapi_examples=examples.request(examples.QUOTE_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Price a cart in the key's channel. The same cart costs the same in every channel unless
    a channel rule says otherwise (and `channel_rules` names it). The `quote_token` buys it."""
    channel = domain.bound_channel(principal)
    if body.channel is not None and body.channel != channel:
        raise Forbidden(
            f"{principal.describe()} sells in channel {channel}, not {body.channel.value}; "
            "leave `channel` out or use a key bound to that channel"
        )
    quote = {**payload(body), "channel": channel}

    async def price(_: str) -> Reply:
        return await gateway.pricing.call("POST", "/quotes", json=quote)

    return await once(request, gateway, principal, idempotency_key, quote, price)


# Orders


@router.post(
    "/orders",
    status_code=202,
    tags=["orders"],
    response_model=OrderAccepted,
    responses={202: examples.response(examples.ORDER_ACCEPTED)},
)
async def place_order(
    request: Request,
    principal: Annotated[Principal, role(SHOP, STORE, to="place orders")],
    gateway: Gateway,
    body: Annotated[PlaceOrder, Body(openapi_examples=examples.request(*examples.ORDERS_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Order what a quote priced. Routing and the stock reservation follow within moments:
    poll the order for `confirmed` (or `reserved` for click & reserve)."""
    channel = domain.bound_channel(principal)
    quoted_for = domain.quote_channel(body.quote_token)
    if quoted_for is not None and quoted_for != channel:
        raise Forbidden(
            f"the quote was made for channel {quoted_for}; {principal.describe()} orders in "
            f"channel {channel}"
        )
    order = payload(body)

    async def place(downstream_key: str) -> Reply:
        return await gateway.orders.call(
            "POST",
            "/orders",
            json=order,
            headers={"Idempotency-Key": downstream_key},
            safe_to_retry=True,
        )

    return await once(request, gateway, principal, idempotency_key, order, place)


async def _readable_order(
    request: Request, gateway: handlers.Gateway, principal: Principal, order_id: str
) -> Reply:
    reply = await gateway.orders.call("GET", f"/orders/{order_id}", safe_to_retry=True)
    if reply.ok:
        deny_if(domain.order_denial(principal, reply.json()["channel"]))
    return reply


@router.get(
    "/orders/{order_id}",
    tags=["orders"],
    response_model=Order,
    responses={200: examples.response(examples.ORDER)},
)
async def get_order(
    request: Request,
    principal: Annotated[Principal, role(SHOP, STORE, ADMIN, to="read orders")],
    gateway: Gateway,
    order_id: PathId,
) -> Response:
    """The order: status, lines with their price snapshot, fulfillments and totals. Shop keys
    see their channel's orders; store staff and admins see all."""
    return respond(await _readable_order(request, gateway, principal, order_id), request)


@router.get(
    "/orders/{order_id}/routing",
    tags=["orders"],
    response_model=RoutingDecision,
    responses={200: examples.response(examples.ROUTING)},
)
async def get_routing(
    request: Request,
    principal: Annotated[Principal, role(STORE, ADMIN, to="read routing decisions")],
    gateway: Gateway,
    order_id: PathId,
) -> Response:
    """Why the order went where it went: every candidate with its score and reasons, the rules
    applied, the chosen plan, and each re-route."""
    reply = await gateway.orders.call("GET", f"/orders/{order_id}/routing", safe_to_retry=True)
    return respond(reply, request)


@router.post(
    "/orders/{order_id}/cancel",
    tags=["orders"],
    response_model=OrderAfterCancel,
    responses={200: examples.response(examples.ORDER_CANCELLED)},
)
async def cancel_order(
    request: Request,
    principal: Annotated[Principal, role(SHOP, STORE, ADMIN, to="cancel orders")],
    gateway: Gateway,
    order_id: PathId,
    body: Annotated[
        CancelIn | None, Body(openapi_examples=examples.request(*examples.CANCEL_IN))
    ] = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Cancel the order and release its stock; not once part of it shipped or was collected.
    With `lines`, only those units: `refund` is what they were paid, and cancelling the last
    units cancels the order."""
    found = await _readable_order(request, gateway, principal, order_id)
    if not found.ok:
        return respond(found, request)
    cancel = payload(body) if body else {}

    async def cancel_it(downstream_key: str) -> Reply:
        # Cancelling a cancelled order changes nothing, and orders applies a partial cancel once
        # per key, so a retry is harmless either way.
        return await gateway.orders.call(
            "POST",
            f"/orders/{order_id}/cancel",
            json=cancel,
            headers={"Idempotency-Key": downstream_key},
            safe_to_retry=True,
        )

    return await once(request, gateway, principal, idempotency_key, cancel, cancel_it)


@router.post(
    "/orders/{order_id}/pickup-store",
    tags=["orders"],
    response_model=Order,
    responses={200: examples.response(examples.ORDER)},
)
async def change_pickup_store(
    request: Request,
    principal: Annotated[Principal, role(SHOP, STORE, ADMIN, to="change pickup stores")],
    gateway: Gateway,
    order_id: PathId,
    body: Annotated[
        PickupStoreIn, Body(openapi_examples=examples.request(examples.PICKUP_STORE_IN))
    ],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Collect at another store before the order is ready: it is routed there again, and the
    old reservation is released only once the new one holds. A 409 says why when the new store
    cannot serve the order; it then keeps its store."""
    found = await _readable_order(request, gateway, principal, order_id)
    if not found.ok:
        return respond(found, request)
    if principal.role is Role.STORE:
        # Store staff move the collections waiting at their own store (the customer is there).
        waiting_at = sorted(
            {
                f["pickup_store_id"]
                for f in found.json()["fulfillments"]
                if f["pickup_store_id"] and f["status"] not in ("rejected", "cancelled", "expired")
            }
        )
        if principal.store_id not in waiting_at:
            deny_if(domain.store_denial(principal, waiting_at[0] if waiting_at else "unknown"))
    move = payload(body)

    async def move_it(_: str) -> Reply:
        # Moving to the store the order already collects at changes nothing: safe to repeat.
        return await gateway.orders.call(
            "POST", f"/orders/{order_id}/pickup-store", json=move, safe_to_retry=True
        )

    return await once(request, gateway, principal, idempotency_key, move, move_it)
