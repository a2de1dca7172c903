"""The `/v1` REST contract (DESIGN.md §4): each route authenticates, authorises, and hands the
validated request to the service that owns it.

Answers of the services behind are passed on unchanged (their problem responses too, with
`instance` set to the gateway's path), so the gateway never re-shapes the services' contract.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.contracts.base import Contract
from services.contracts.gateway import ApiKey, ApiKeyCreated, ApiKeyIn, ApiKeyPage, QuoteIn, Role
from services.contracts.inventory import (
    AvailabilityResponse,
    Location,
    LocationIn,
    LocationType,
    StockAdjustmentIn,
    StockFeedIn,
    StockFeedResult,
    StockLevel,
    StockLevelIn,
)
from services.contracts.orders import (
    CancelIn,
    Fulfillment,
    FulfillmentPage,
    FulfillmentStatus,
    Order,
    OrderAccepted,
    PlaceOrder,
    RejectIn,
    Return,
    ReturnIn,
    RoutingDecision,
    ShipIn,
)
from services.contracts.pricing import Price, PriceIn, Promotion, PromotionIn, Quote
from services.gateway import domain, examples, handlers
from services.gateway.domain import Principal
from services.gateway.downstream import Downstream, Reply
from services.infrastructure.errors import PROBLEM_JSON, PROBLEM_RESPONSES, Conflict, Forbidden
from services.infrastructure.service import UnitOfWorkDep

SHOP, STORE, PARTNER, ADMIN = Role.SHOP, Role.STORE, Role.PARTNER, Role.ADMIN


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    401: _problem("No API key, or one that is unknown or revoked"),
    403: _problem("The key's role or binding does not allow this"),
    429: _problem("Over the key's rate limit; `Retry-After` says when to try again"),
    503: _problem("A service behind the gateway is unavailable; `unavailable` names it"),
}

router = APIRouter(prefix="/v1", responses=RESPONSES)

bearer = HTTPBearer(
    auto_error=False, description="An API key, created by an admin: `Bearer <api key>`."
)


def gateway_of(request: Request) -> handlers.Gateway:
    found: handlers.Gateway = request.app.state.gateway
    return found


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    gateway = gateway_of(request)
    principal = await gateway.authenticator.authenticate(
        credentials.credentials if credentials else None
    )
    gateway.rate_limiter.check(principal)
    return principal


Caller = Annotated[Principal, Depends(authenticated)]
Gateway = Annotated[handlers.Gateway, Depends(gateway_of)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Repeat the request safely: the same key and body get the first response "
        "again (kept 24 h); the same key with another body is a 422.",
        examples=["9b2e7c1e-checkout-42"],
    ),
]
Cursor = Annotated[str | None, Query(max_length=200, description="`next_cursor` of a page.")]
Limit = Annotated[int, Query(ge=1, le=200)]


def allow(principal: Principal, roles: frozenset[Role], action: str) -> None:
    if (reason := domain.role_denial(principal, roles, action)) is not None:
        raise Forbidden(reason)


def deny_if(reason: str | None) -> None:
    if reason is not None:
        raise Forbidden(reason)


def respond(reply: Reply, request: Request) -> Response:
    body = reply.body
    if reply.content_type.startswith(PROBLEM_JSON):
        problem = reply.json()
        problem["instance"] = request.url.path
        body = json.dumps(problem).encode()
    headers = {"Idempotent-Replayed": "true"} if reply.replayed else None
    return Response(body, reply.status, headers=headers, media_type=reply.content_type)


def payload(body: Contract) -> Any:
    return body.model_dump(mode="json", exclude_unset=True)


async def once(
    request: Request,
    gateway: handlers.Gateway,
    principal: Principal,
    idempotency_key: str | None,
    body: Any,
    action: handlers.Action,
) -> Response:
    """Run a creating or changing request at most once per Idempotency-Key."""
    fingerprint = domain.request_fingerprint(request.method, request.url.path, body)
    reply = await gateway.idempotency.run(principal, idempotency_key, fingerprint, action)
    return respond(reply, request)


def _params(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


# Stock and prices


@router.get(
    "/availability",
    tags=["stock"],
    response_model=AvailabilityResponse,
    responses={200: examples.response(examples.AVAILABILITY)},
)
async def availability(
    request: Request,
    principal: Caller,
    gateway: Gateway,
    sku: Annotated[list[str], Query(min_length=1, max_length=100, examples=[["TEE-WHT-M"]])],
    near: Annotated[str | None, Query(description="LAT,LON", examples=["52.37,4.90"])] = None,
    radius_km: Annotated[float | None, Query(gt=0, le=20_000, examples=[100])] = None,
    location_type: LocationType | None = None,
) -> Response:
    """Available units per sku, per location, nearest first when `near` is given; store staff
    see every location."""
    allow(principal, frozenset({SHOP, STORE, ADMIN}), "look up availability")
    params = _params(sku=sku, near=near, radius_km=radius_km, location_type=location_type)
    reply = await gateway.inventory.call("GET", "/availability", params=params, safe_to_retry=True)
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
    principal: Caller,
    gateway: Gateway,
    body: Annotated[QuoteIn, Body(openapi_examples=examples.request(examples.QUOTE_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Price a cart in the key's channel. The same cart costs the same in every channel unless
    a channel rule says otherwise (and `channel_rules` names it). The `quote_token` buys it."""
    allow(principal, frozenset({SHOP, STORE, PARTNER}), "ask for quotes")
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
    principal: Caller,
    gateway: Gateway,
    body: Annotated[PlaceOrder, Body(openapi_examples=examples.request(*examples.ORDERS_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Order what a quote priced. Routing and the stock reservation follow within moments:
    poll the order for `confirmed` (or `reserved` for click & reserve)."""
    allow(principal, frozenset({SHOP, STORE}), "place orders")
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
    request: Request, principal: Caller, gateway: Gateway, order_id: str
) -> Response:
    """The order: status, lines with their price snapshot, fulfillments and totals. Shop keys
    see their channel's orders; store staff and admins see all."""
    allow(principal, frozenset({SHOP, STORE, ADMIN}), "read orders")
    return respond(await _readable_order(request, gateway, principal, order_id), request)


@router.get(
    "/orders/{order_id}/routing",
    tags=["orders"],
    response_model=RoutingDecision,
    responses={200: examples.response(examples.ROUTING)},
)
async def get_routing(
    request: Request, principal: Caller, gateway: Gateway, order_id: str
) -> Response:
    """Why the order went where it went: every candidate with its score and reasons, the rules
    applied, the chosen plan, and each re-route."""
    allow(principal, frozenset({STORE, ADMIN}), "read routing decisions")
    reply = await gateway.orders.call("GET", f"/orders/{order_id}/routing", safe_to_retry=True)
    return respond(reply, request)


@router.post(
    "/orders/{order_id}/cancel",
    tags=["orders"],
    response_model=Order,
    responses={200: examples.response(examples.ORDER_CANCELLED)},
)
async def cancel_order(
    request: Request,
    principal: Caller,
    gateway: Gateway,
    order_id: str,
    body: Annotated[
        CancelIn | None, Body(openapi_examples=examples.request(examples.CANCEL_IN))
    ] = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Cancel the order and release its stock; not once part of it shipped or was collected."""
    allow(principal, frozenset({SHOP, STORE, ADMIN}), "cancel orders")
    found = await _readable_order(request, gateway, principal, order_id)
    if not found.ok:
        return respond(found, request)
    cancel = payload(body) if body else {}

    async def cancel_it(_: str) -> Reply:
        # Cancelling a cancelled order changes nothing, so a retry is harmless.
        return await gateway.orders.call(
            "POST", f"/orders/{order_id}/cancel", json=cancel, safe_to_retry=True
        )

    return await once(request, gateway, principal, idempotency_key, cancel, cancel_it)


# Fulfillments: the store's and the partner's work


@router.get(
    "/stores/{store_id}/fulfillments",
    tags=["stores"],
    response_model=FulfillmentPage,
    responses={200: examples.response(examples.FULFILLMENT_PAGE)},
)
async def store_queue(
    request: Request,
    principal: Caller,
    gateway: Gateway,
    store_id: str,
    status: FulfillmentStatus | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Response:
    """The store's work queue, oldest first: what it ships and what is collected there."""
    deny_if(domain.store_denial(principal, store_id))
    reply = await gateway.orders.call(
        "GET",
        f"/stores/{store_id}/fulfillments",
        params=_params(status=status, cursor=cursor, limit=limit),
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
    request: Request, principal: Caller, gateway: Gateway, fulfillment_id: str
) -> Response:
    """One fulfillment of the store's or the partner's own."""
    reply = await _own_fulfillment(gateway, principal, fulfillment_id)
    return respond(reply, request)


async def _own_fulfillment(
    gateway: handlers.Gateway, principal: Principal, fulfillment_id: str
) -> Reply:
    reply = await gateway.orders.call("GET", f"/fulfillments/{fulfillment_id}", safe_to_retry=True)
    if reply.ok:
        deny_if(domain.fulfillment_denial(principal, reply.json()))
    return reply


async def _fulfillment_step(
    request: Request,
    gateway: handlers.Gateway,
    principal: Principal,
    idempotency_key: str | None,
    fulfillment_id: str,
    step: str,
    body: Contract | None = None,
) -> Response:
    found = await _own_fulfillment(gateway, principal, fulfillment_id)
    if not found.ok:
        return respond(found, request)
    data = payload(body) if body is not None else None

    async def take_step(_: str) -> Reply:
        return await gateway.orders.call(
            "POST", f"/fulfillments/{fulfillment_id}/{step}", json=data
        )

    return await once(request, gateway, principal, idempotency_key, data, take_step)


@router.post(
    "/fulfillments/{fulfillment_id}/ready",
    tags=["stores"],
    response_model=Fulfillment,
    responses={200: examples.response(examples.FULFILLMENT)},
)
async def ready(
    request: Request,
    principal: Caller,
    gateway: Gateway,
    fulfillment_id: str,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Picked and waiting for the customer (click & collect, click & reserve)."""
    allow(principal, frozenset({STORE, ADMIN}), "mark fulfillments ready for pickup")
    return await _fulfillment_step(
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
    principal: Caller,
    gateway: Gateway,
    fulfillment_id: str,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Collected by the customer: the order completes and the stock is committed."""
    allow(principal, frozenset({STORE, ADMIN}), "hand over fulfillments")
    return await _fulfillment_step(
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
    principal: Caller,
    gateway: Gateway,
    fulfillment_id: str,
    body: Annotated[ShipIn, Body(openapi_examples=examples.request(examples.SHIP_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Handed to a carrier: the stock is committed."""
    allow(principal, frozenset({STORE, PARTNER, ADMIN}), "ship fulfillments")
    return await _fulfillment_step(
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
    principal: Caller,
    gateway: Gateway,
    fulfillment_id: str,
    body: Annotated[RejectIn, Body(openapi_examples=examples.request(examples.REJECT_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Cannot fulfil it (a short pick): the lines are routed again, elsewhere."""
    allow(principal, frozenset({STORE, PARTNER, ADMIN}), "reject fulfillments")
    return await _fulfillment_step(
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
    principal: Caller,
    gateway: Gateway,
    store_id: str,
    body: Annotated[
        StockAdjustmentIn, Body(openapi_examples=examples.request(*examples.ADJUSTMENTS_IN))
    ],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A POS sale, a receipt, a count correction or damage, recorded in the movement ledger."""
    deny_if(domain.store_denial(principal, store_id))
    adjustment = payload(body)

    async def adjust(_: str) -> Reply:
        return await gateway.inventory.call(
            "POST", f"/locations/{store_id}/stock-adjustments", json=adjustment
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


# Partners


@router.get(
    "/partner/fulfillments",
    tags=["partners"],
    response_model=FulfillmentPage,
    responses={200: examples.response(examples.FULFILLMENT_PAGE)},
)
async def partner_queue(
    request: Request,
    principal: Caller,
    gateway: Gateway,
    status: FulfillmentStatus | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Response:
    """The fulfillments routed to this partner, oldest first."""
    allow(principal, frozenset({PARTNER}), "list partner fulfillments")
    reply = await gateway.orders.call(
        "GET",
        f"/partners/{principal.partner_id}/fulfillments",
        params=_params(status=status, cursor=cursor, limit=limit),
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
    principal: Caller,
    gateway: Gateway,
    fulfillment_id: str,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """The partner takes the fulfillment on."""
    allow(principal, frozenset({PARTNER}), "accept partner fulfillments")
    return await _fulfillment_step(
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
    principal: Caller,
    gateway: Gateway,
    fulfillment_id: str,
    body: Annotated[RejectIn, Body(openapi_examples=examples.request(examples.REJECT_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """The partner cannot fulfil it: the lines are routed again, elsewhere."""
    allow(principal, frozenset({PARTNER}), "reject partner fulfillments")
    return await _fulfillment_step(
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
    principal: Caller,
    gateway: Gateway,
    fulfillment_id: str,
    body: Annotated[ShipIn, Body(openapi_examples=examples.request(examples.SHIP_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Shipped by the partner: the stock is committed."""
    allow(principal, frozenset({PARTNER}), "ship partner fulfillments")
    return await _fulfillment_step(
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
    principal: Caller,
    gateway: Gateway,
    body: Annotated[StockFeedIn, Body(openapi_examples=examples.request(examples.STOCK_FEED_IN))],
    location_id: Annotated[
        str | None,
        Query(description="Which of the partner's locations, when it has more than one."),
    ] = None,
) -> Response:
    """The partner's absolute stock: `on_hand` per sku. A feed with an older `sequence` than
    the last one applied is ignored, so late or repeated feeds do no harm."""
    allow(principal, frozenset({PARTNER}), "feed partner stock")
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


# Admin: set-up


async def _admin_upsert(
    request: Request,
    gateway: handlers.Gateway,
    principal: Principal,
    idempotency_key: str | None,
    service: Downstream,
    path: str,
    body: Contract,
    what: str,
) -> Response:
    allow(principal, frozenset({ADMIN}), what)
    data = payload(body)

    async def upsert(_: str) -> Reply:
        # Absolute sets: doing one twice leaves the same state, so a retry is safe.
        return await service.call("POST", path, json=data, safe_to_retry=True)

    return await once(request, gateway, principal, idempotency_key, data, upsert)


@router.post(
    "/admin/locations",
    tags=["admin"],
    response_model=Location,
    responses={200: examples.response(examples.LOCATION)},
)
async def admin_location(
    request: Request,
    principal: Caller,
    gateway: Gateway,
    body: Annotated[LocationIn, Body(openapi_examples=examples.request(*examples.LOCATIONS_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Create or update a location (warehouse, store or dropship partner) by its own id."""
    return await _admin_upsert(
        request, gateway, principal, idempotency_key, gateway.inventory, "/locations", body,
        "set up locations",
    )  # fmt: skip


@router.post(
    "/admin/stock",
    tags=["admin"],
    response_model=StockLevel,
    responses={200: examples.response(examples.STOCK_LEVEL)},
)
async def admin_stock(
    request: Request,
    principal: Caller,
    gateway: Gateway,
    body: Annotated[StockLevelIn, Body(openapi_examples=examples.request(examples.STOCK_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Set an absolute stock level (never below what is reserved)."""
    return await _admin_upsert(
        request, gateway, principal, idempotency_key, gateway.inventory, "/stock-levels", body,
        "set stock levels",
    )  # fmt: skip


@router.post(
    "/admin/prices",
    tags=["admin"],
    response_model=Price,
    responses={200: examples.response(examples.PRICE)},
)
async def admin_price(
    request: Request,
    principal: Caller,
    gateway: Gateway,
    body: Annotated[PriceIn, Body(openapi_examples=examples.request(*examples.PRICES_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A base price, or one for a single channel; with an optional validity window."""
    return await _admin_upsert(
        request, gateway, principal, idempotency_key, gateway.pricing, "/prices", body,
        "set prices",
    )  # fmt: skip


@router.post(
    "/admin/promotions",
    tags=["admin"],
    response_model=Promotion,
    responses={200: examples.response(examples.PROMOTION)},
)
async def admin_promotion(
    request: Request,
    principal: Caller,
    gateway: Gateway,
    body: Annotated[PromotionIn, Body(openapi_examples=examples.request(*examples.PROMOTIONS_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Create or update a promotion: `percent_off {percent}`, `amount_off {amount}`,
    `buy_n_pay_m {buy, pay}` ("3 for 2" is buy 3 pay 2), `tiered {tiers[{min_quantity,
    percent}]}`, `bundle_price {amount}`."""
    return await _admin_upsert(
        request, gateway, principal, idempotency_key, gateway.pricing, "/promotions", body,
        "set promotions",
    )  # fmt: skip


@router.post(
    "/admin/api-keys",
    status_code=201,
    tags=["admin"],
    response_model=ApiKeyCreated,
    responses={201: examples.response(examples.API_KEY_CREATED)},
)
async def create_api_key(
    request: Request,
    principal: Caller,
    gateway: Gateway,
    uow: UnitOfWorkDep,
    body: Annotated[ApiKeyIn, Body(openapi_examples=examples.request(*examples.API_KEYS_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A new API key with a role and its binding. The key is in this answer only: it is
    stored hashed, and a replay of this request shows `api_key: null`."""
    allow(principal, frozenset({ADMIN}), "create API keys")
    data = payload(body)

    async def create(_: str) -> Reply:
        async with uow:
            created = await handlers.create_api_key(body, uow)
        return Reply(201, created.model_dump_json().encode(), "application/json")

    fingerprint = domain.request_fingerprint(request.method, request.url.path, data)
    reply = await gateway.idempotency.run(
        principal, idempotency_key, fingerprint, create, keep=handlers.without_secret
    )
    return respond(reply, request)


@router.get("/admin/api-keys", tags=["admin"], response_model=ApiKeyPage)
async def list_api_keys(
    principal: Caller,
    uow: UnitOfWorkDep,
    cursor: Cursor = None,
    limit: Limit = 50,
    include_revoked: bool = False,
) -> ApiKeyPage:
    """Every API key (never its secret), by key id."""
    allow(principal, frozenset({ADMIN}), "list API keys")
    async with uow:
        return await handlers.list_api_keys(cursor, limit, include_revoked, uow)


@router.delete("/admin/api-keys/{key_id}", tags=["admin"], response_model=ApiKey)
async def revoke_api_key(principal: Caller, uow: UnitOfWorkDep, key_id: str) -> ApiKey:
    """Revoke a key: it stops working within seconds (the gateway's key cache time)."""
    allow(principal, frozenset({ADMIN}), "revoke API keys")
    async with uow:
        return await handlers.revoke_api_key(key_id, uow)
