"""Set-up, for admins: locations, stock, incoming stock, product names, prices, promotions and
API keys; and, for every key, what it is."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response

from services.contracts.base import Contract, Identifier, Sku
from services.contracts.gateway import ApiKey, ApiKeyCreated, ApiKeyIn, ApiKeyPage
from services.contracts.inventory import (
    Location,
    LocationIn,
    Product,
    ProductIn,
    ReceiveIn,
    StockLevel,
    StockLevelIn,
    Supply,
    SupplyIn,
    SupplyStatus,
)
from services.contracts.pricing import Price, PriceIn, Promotion, PromotionIn
from services.gateway import domain, examples, handlers
from services.gateway.api.common import (
    ADMIN,
    Caller,
    Gateway,
    IdempotencyKey,
    Limit,
    PathId,
    once,
    payload,
    query,
    respond,
    role,
)
from services.gateway.domain import Principal
from services.gateway.downstream import Downstream, Reply
from services.infrastructure.service import UnitOfWorkDep

router = APIRouter()
Admin = Annotated[Principal, role(ADMIN, to="set up the retail network")]


# Admin: set-up


async def _admin_upsert(
    request: Request,
    gateway: handlers.Gateway,
    principal: Principal,
    idempotency_key: str | None,
    service: Downstream,
    path: str,
    body: Contract,
) -> Response:
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
    principal: Admin,
    gateway: Gateway,
    body: Annotated[LocationIn, Body(openapi_examples=examples.request(*examples.LOCATIONS_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Create or update a location (warehouse, store or dropship partner) by its own id."""
    return await _admin_upsert(
        request, gateway, principal, idempotency_key, gateway.inventory, "/locations", body,
    )  # fmt: skip


@router.post(
    "/admin/stock",
    tags=["admin"],
    response_model=StockLevel,
    responses={200: examples.response(examples.STOCK_LEVEL)},
)
async def admin_stock(
    request: Request,
    principal: Admin,
    gateway: Gateway,
    body: Annotated[StockLevelIn, Body(openapi_examples=examples.request(examples.STOCK_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Set an absolute stock level (never below what is reserved)."""
    return await _admin_upsert(
        request, gateway, principal, idempotency_key, gateway.inventory, "/stock-levels", body,
    )  # fmt: skip


@router.post(
    "/admin/incoming-stock",
    tags=["admin"],
    response_model=Supply,
    responses={200: examples.response(examples.SUPPLY)},
)
async def admin_incoming_stock(
    request: Request,
    principal: Admin,
    gateway: Gateway,
    body: Annotated[SupplyIn, Body(openapi_examples=examples.request(examples.SUPPLY_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Create or update stock on its way to a location (a purchase order or transfer) by its
    own id. Backorders can be promised against it; its `quantity` never drops below what was
    received plus what is promised (409)."""
    return await _admin_upsert(
        request, gateway, principal, idempotency_key, gateway.inventory, "/incoming-stock", body,
    )  # fmt: skip


@router.post(
    "/admin/incoming-stock/{supply_id}/receive",
    tags=["admin"],
    response_model=Supply,
    responses={200: examples.response(examples.SUPPLY_RECEIVED)},
)
async def admin_receive_incoming_stock(
    request: Request,
    principal: Admin,
    gateway: Gateway,
    supply_id: PathId,
    body: Annotated[
        ReceiveIn | None, Body(openapi_examples=examples.request(*examples.RECEIVE_IN))
    ] = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Units of a supply arrived (without `quantity`, all that is still incoming): they go on
    hand, and backorders promised on them are reserved in the order they were promised (their
    orders are confirmed moments later). More than is still incoming is a 409."""
    receipt = payload(body) if body is not None else {}

    async def take_in(downstream_key: str) -> Reply:
        # Inventory finds a repeat by its key in the movement ledger, so a retry is harmless.
        return await gateway.inventory.call(
            "POST",
            f"/incoming-stock/{supply_id}/receive",
            json=receipt,
            headers={"Idempotency-Key": downstream_key},
            safe_to_retry=True,
        )

    return await once(request, gateway, principal, idempotency_key, receipt, take_in)


@router.get(
    "/admin/incoming-stock",
    tags=["admin"],
    response_model=list[Supply],
    responses={200: examples.response([examples.SUPPLY])},
)
async def admin_list_incoming_stock(
    request: Request,
    principal: Annotated[Principal, role(ADMIN, to="look at incoming stock")],
    gateway: Gateway,
    sku: Annotated[list[Sku] | None, Query(max_length=100)] = None,
    location_id: Annotated[Identifier | None, Query()] = None,
    status: SupplyStatus | None = None,
) -> Response:
    """Stock on its way, soonest first, with what of it is received, promised to backorders
    and still promisable; at most 1000 supplies when no `sku` narrows the list."""
    wanted = query(sku=sku, location_id=location_id, status=status)
    reply = await gateway.inventory.call(
        "GET", "/incoming-stock", params=wanted, safe_to_retry=True
    )
    return respond(reply, request)


@router.post(
    "/admin/products",
    tags=["admin"],
    response_model=Product,
    responses={200: examples.response(examples.PRODUCT)},
)
async def admin_product(
    request: Request,
    principal: Admin,
    gateway: Gateway,
    body: Annotated[ProductIn, Body(openapi_examples=examples.request(examples.PRODUCT_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Name a product by its sku (create or rename it): availability and product search show
    the name."""
    return await _admin_upsert(
        request, gateway, principal, idempotency_key, gateway.inventory, "/products", body,
    )  # fmt: skip


@router.post(
    "/admin/prices",
    tags=["admin"],
    response_model=Price,
    responses={200: examples.response(examples.PRICE)},
)
async def admin_price(
    request: Request,
    principal: Admin,
    gateway: Gateway,
    body: Annotated[PriceIn, Body(openapi_examples=examples.request(*examples.PRICES_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A base price, or one for a single channel; with an optional validity window."""
    return await _admin_upsert(
        request, gateway, principal, idempotency_key, gateway.pricing, "/prices", body,
    )  # fmt: skip


@router.post(
    "/admin/promotions",
    tags=["admin"],
    response_model=Promotion,
    responses={200: examples.response(examples.PROMOTION)},
)
async def admin_promotion(
    request: Request,
    principal: Admin,
    gateway: Gateway,
    body: Annotated[PromotionIn, Body(openapi_examples=examples.request(*examples.PROMOTIONS_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Create or update a promotion: `percent_off {percent}`, `amount_off {amount}`,
    `buy_n_pay_m {buy, pay}` ("3 for 2" is buy 3 pay 2), `tiered {tiers[{min_quantity,
    percent}]}`, `bundle_price {amount}`."""
    return await _admin_upsert(
        request, gateway, principal, idempotency_key, gateway.pricing, "/promotions", body,
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
    principal: Annotated[Principal, role(ADMIN, to="create API keys")],
    gateway: Gateway,
    uow: UnitOfWorkDep,
    body: Annotated[ApiKeyIn, Body(openapi_examples=examples.request(*examples.API_KEYS_IN))],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A new API key with a role and its binding. The key is in this answer only: it is
    stored hashed, and a replay of this request shows `api_key: null`."""
    data = payload(body)

    async def create(_: str) -> Reply:
        async with uow:
            created = await handlers.create_api_key(body, uow)
        return Reply(201, created.model_dump_json().encode(), "application/json")

    fingerprint = domain.request_fingerprint(request.method, request.url.path, data)
    reply = await gateway.idempotency.run(
        principal,
        idempotency_key,
        f"{request.method} {request.url.path}",
        fingerprint,
        create,
        keep=handlers.without_secret,
    )
    return respond(reply, request)


@router.get(
    "/admin/api-keys",
    tags=["admin"],
    response_model=ApiKeyPage,
    responses={200: examples.response(examples.API_KEY_PAGE)},
)
async def list_api_keys(
    principal: Annotated[Principal, role(ADMIN, to="list API keys")],
    uow: UnitOfWorkDep,
    cursor: Annotated[
        Identifier | None, Query(description="`next_cursor` of a page: the last key id it listed.")
    ] = None,
    limit: Limit = 50,
    include_revoked: bool = False,
) -> ApiKeyPage:
    """Every API key (never its secret), by key id."""
    async with uow:
        return await handlers.list_api_keys(cursor, limit, include_revoked, uow)


@router.get(
    "/me",
    tags=["api keys"],
    response_model=ApiKey,
    responses={200: examples.response(examples.OWN_API_KEY)},
)
async def who_am_i(principal: Caller, uow: UnitOfWorkDep) -> ApiKey:
    """The calling key itself (never its secret): its role and what it is bound to."""
    async with uow:
        return await handlers.own_api_key(principal, uow)


@router.delete(
    "/admin/api-keys/{key_id}",
    tags=["admin"],
    response_model=ApiKey,
    responses={200: examples.response(examples.API_KEY_REVOKED)},
)
async def revoke_api_key(
    principal: Annotated[Principal, role(ADMIN, to="revoke API keys")],
    uow: UnitOfWorkDep,
    key_id: PathId,
) -> ApiKey:
    """Revoke a key: it stops working within seconds (the gateway's key cache time)."""
    async with uow:
        return await handlers.revoke_api_key(key_id, uow)


@router.get(
    "/admin/routing/sites",
    tags=["admin"],
    response_model=list[dict[str, Any]],
    responses={200: examples.response(examples.ROUTING_SITES)},
)
async def routing_sites(
    request: Request,
    principal: Annotated[Principal, role(ADMIN, to="look at routing's view of the network")],
    gateway: Gateway,
    sku: Annotated[list[Sku], Query(min_length=1, max_length=100)],
) -> Response:
    """What routing sees right now: every location as orders knows it, with its projected
    availability of these skus and the ship capacity it has left today. Orders learns of
    locations and stock through events, so a change shows here moments after it is made."""
    reply = await gateway.orders.call(
        "GET", "/routing/sites", params={"sku": sku}, safe_to_retry=True
    )
    return respond(reply, request)
