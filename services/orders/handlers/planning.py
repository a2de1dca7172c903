"""Routing an order's lines to locations, recording why, and settling the order's status."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from services.contracts.inventory import (
    Location,
    LocationChanged,
    ReleaseStock,
    ReserveStock,
)
from services.contracts.orders import (
    FulfillmentAssigned,
    FulfillmentMethod,
    FulfillmentStatus,
    OrderCompleted,
    OrderConfirmed,
    OrderRejected,
    OrderStatus,
)
from services.infrastructure.database import UnitOfWork
from services.infrastructure.errors import ServiceUnavailable
from services.infrastructure.metrics import ORDERS_UNROUTABLE, ROUTING_DECISIONS, STOCK_CHECKS
from services.orders import db, domain, routing
from services.orders.handlers.common import (
    F,
    Policy,
    StockAuthority,
    lines_of,
    now,
    today,
)

# Routing

# What made orders route: a new order, a fulfillment that failed (rejected by inventory or the
# location), or backordered lines retried.
RoutingCause = Literal["placed", "reroute", "backorder"]


def _count_decision(cause: RoutingCause, result: routing.RoutingResult, gave_up: bool) -> None:
    planned = len(result.fulfillments)
    if gave_up:
        outcome = "max_attempts"
    else:
        outcome = "none" if planned == 0 else "single" if planned == 1 else "split"
    ROUTING_DECISIONS.labels("orders", cause, outcome).inc()


def site(row: dict[str, Any]) -> routing.Site:
    return routing.Site(
        location_id=row["location_id"],
        type=row["type"],
        lat=row["lat"],
        lon=row["lon"],
        capabilities=frozenset(row["capabilities"]),
        priority=row["priority"],
        ship_capacity_left=max(row["ship_capacity"] - row["assigned_today"], 0),
        available=row["available"],
        name=row["name"],
    )


async def route(
    uow: UnitOfWork,
    order: Any,
    lines: dict[str, int],
    trigger: str,
    policy: Policy,
    *,
    record_failure: bool = True,
    cause: RoutingCause = "placed",
) -> bool:
    """Plan fulfillments for `lines`, record the decision, and reserve; False if nothing can."""
    conn = uow.connection
    attempt = await db.next_attempt(conn, order.order_id)
    history = await db.fulfillments_of(conn, order.order_id)
    excluded = frozenset(f.location_id for f in history if f.status == F.REJECTED)
    method = FulfillmentMethod(order.method)
    address = order.address or {}
    request = routing.RoutingRequest(
        method=method.value,
        lines=lines,
        destination=routing.Point(address["lat"], address["lon"]) if address else None,
        store_id=order.store_id,
        excluded=excluded,
    )
    day = today()
    skus = list(lines)
    result = routing.route_order(
        request, [site(r) for r in await db.sites(conn, skus, day)], policy.rules
    )
    checked = policy.stock is not None and _short(result)
    if policy.stock is not None and checked:
        await _refresh_from_inventory(uow, policy.stock, skus)
        result = routing.route_order(
            request, [site(r) for r in await db.sites(conn, skus, day)], policy.rules
        )
        STOCK_CHECKS.labels("orders", "short" if _short(result) else "behind").inc()
        result = replace(
            result, rules_applied=(*result.rules_applied, "stock checked with inventory")
        )
    gave_up = attempt > policy.max_attempts and bool(result.fulfillments)
    if gave_up:
        result = routing.RoutingResult(
            fulfillments=(),
            rejected_reason=f"gave up after {policy.max_attempts} routing attempts",
            candidates=result.candidates,
            rules_applied=(*result.rules_applied, f"max {policy.max_attempts} attempts"),
            explanation=result.explanation,
        )
    _count_decision(cause, result, gave_up)
    if not result.fulfillments and not record_failure:
        return False
    await db.save_attempt(
        conn,
        order.order_id,
        attempt,
        {
            **decision(attempt, trigger, lines, excluded, result),
            "stock_checked_with_inventory": checked,
        },
    )
    for n, planned in enumerate(result.fulfillments, start=1):
        fulfillment_id = f"{order.order_id}.{attempt}.{n}"
        await db.insert_fulfillment(
            conn,
            {
                "fulfillment_id": fulfillment_id,
                "order_id": order.order_id,
                "location_id": planned.location_id,
                "location_type": planned.location_type,
                "method": planned.method,
                "status": F.PENDING.value,
                "attempt": attempt,
                "pickup_store_id": planned.pickup_store_id,
                "transfer": planned.transfer,
                "hold_until": order.hold_until,
            },
            dict(planned.lines),
        )
        if method is FulfillmentMethod.DELIVERY or planned.transfer:
            await db.add_load(conn, planned.location_id, day, 1)
        uow.emit(
            FulfillmentAssigned(
                order_id=order.order_id,
                fulfillment_id=fulfillment_id,
                location_id=planned.location_id,
                location_type=planned.location_type,
                method=FulfillmentMethod(planned.method),
                lines=lines_of(dict(planned.lines)),
                attempt=attempt,
            )
        )
        uow.emit(
            ReserveStock(
                order_id=order.order_id,
                fulfillment_id=fulfillment_id,
                reservation_id=fulfillment_id,
                location_id=planned.location_id,
                lines=lines_of(dict(planned.lines)),
                hold_until=order.hold_until if method is FulfillmentMethod.RESERVE else None,
            )
        )
    return bool(result.fulfillments)


def _short(result: routing.RoutingResult) -> bool:
    """The projection could not place the order as asked: nowhere at all, or a collection only
    by moving stock to the store. Either may be the projection being behind inventory."""
    return not result.fulfillments or any(p.transfer for p in result.fulfillments)


async def _refresh_from_inventory(uow: UnitOfWork, stock: StockAuthority, skus: list[str]) -> None:
    """Bring the projection of `skus` up to inventory's current levels, and learn the locations
    it has not seen yet. A row the projection's consumer wrote meanwhile is at least as new: the
    version check keeps the newest, so routing again from the projection uses what inventory
    said or something newer.

    Inventory is asked inside this unit of work, so the order stays locked for one short HTTP
    call (bounded by `inventory_timeout_seconds`); this happens only when routing from the
    projection fell short, never on the common path. If inventory does not answer, the error
    undoes the unit of work: a new order is answered 503 (nothing was taken, retry it), an event
    is delivered again, so no order is rejected on a view nobody could confirm."""
    try:
        levels = await stock.levels(skus)
    except ServiceUnavailable:
        STOCK_CHECKS.labels("orders", "unavailable").inc()
        raise
    for level in levels:
        await db.project_availability(
            uow.connection,
            {
                "sku": level.sku,
                "location_id": level.location_id,
                "available": level.available,
                "version": level.version,
            },
        )
    at = {level.location_id for level in levels}
    for location_id in sorted(at - await db.known_locations(uow.connection, at)):
        location = await stock.location(location_id)
        if location is not None:
            await db.project_location(uow.connection, location_values(location))


def location_values(location: Location | LocationChanged) -> dict[str, Any]:
    """A location as the projection stores it, from inventory's event or its API."""
    values = location.model_dump(mode="python", exclude={"created_at", "updated_at"})
    values["capabilities"] = [c.value for c in location.capabilities]
    values["type"] = location.type.value
    if isinstance(location, Location):
        values["changed_at"] = location.updated_at
    return values


def decision(
    attempt: int,
    trigger: str,
    lines: dict[str, int],
    excluded: frozenset[str],
    result: routing.RoutingResult,
) -> dict[str, Any]:
    return {
        "attempt": attempt,
        "at": now().isoformat(),
        "trigger": trigger,
        "lines": dict(sorted(lines.items())),
        "excluded": sorted(excluded),
        "candidates": [
            {
                "location_id": c.location_id,
                "type": c.type,
                "distance_km": c.distance_km,
                "score": c.score,
                "eligible": c.eligible,
                "covers": dict(c.covers),
                "reasons": list(c.reasons),
            }
            for c in result.candidates
        ],
        "rules_applied": list(result.rules_applied),
        "chosen": [
            {
                "location_id": p.location_id,
                "location_type": p.location_type,
                "method": p.method,
                "lines": dict(p.lines),
                "pickup_store_id": p.pickup_store_id,
                "transfer": p.transfer,
            }
            for p in result.fulfillments
        ],
        "explanation": result.explanation,
        "rejected_reason": result.rejected_reason,
        "alternatives": list(result.alternatives),
    }


async def settle(uow: UnitOfWork, order: Any) -> None:
    """Move the order to the status its fulfillments now imply, and say so."""
    statuses = [F(f.status) for f in await db.fulfillments_of(uow.connection, order.order_id)]
    current = OrderStatus(order.status)
    target = domain.status_after(statuses, FulfillmentMethod(order.method))
    if target is None or target is current or current in domain.TERMINAL_ORDER:
        return
    await db.set_order_status(uow.connection, order.order_id, target.value)
    if target is OrderStatus.COMPLETED:
        uow.emit(OrderCompleted(order_id=order.order_id))
    else:
        uow.emit(OrderConfirmed(order_id=order.order_id, status=target))


async def release(uow: UnitOfWork, order: Any, to: FulfillmentStatus, reason: str) -> None:
    """Close every fulfillment still holding stock and give that stock back."""
    for f in await db.fulfillments_of(uow.connection, order.order_id):
        if F(f.status) in domain.HOLDING:
            await db.update_fulfillment(
                uow.connection, f.fulfillment_id, status=to.value, status_reason=reason
            )
            uow.emit(
                ReleaseStock(
                    order_id=order.order_id, reservation_id=f.fulfillment_id, reason=reason
                )
            )


async def reject_order(uow: UnitOfWork, order: Any, reason: str) -> None:
    await release(uow, order, F.CANCELLED, f"order rejected: {reason}")
    await db.set_order_status(uow.connection, order.order_id, OrderStatus.REJECTED.value, reason)
    uow.emit(OrderRejected(order_id=order.order_id, reason=reason))


async def reroute(uow: UnitOfWork, order: Any, failed: Any, trigger: str, policy: Policy) -> None:
    """Plan the failed fulfillment's lines again without the locations that failed."""
    if OrderStatus(order.status) in domain.TERMINAL_ORDER:
        return
    lines = (await db.fulfillment_lines(uow.connection, [failed.fulfillment_id]))[
        failed.fulfillment_id
    ]
    if await route(uow, order, lines, trigger, policy, cause="reroute"):
        await settle(uow, order)
    else:
        attempts = await db.attempts(uow.connection, order.order_id)
        await unplanned(uow, order, policy, attempts[-1]["rejected_reason"] or "no location left")


async def unplanned(uow: UnitOfWork, order: Any, policy: Policy, reason: str) -> OrderStatus:
    """Nothing can serve (part of) the order now: wait for stock if backorders are configured
    for deliveries, otherwise reject it and release what it holds."""
    if policy.backorder and order.method == FulfillmentMethod.DELIVERY:
        await db.set_backordered(uow.connection, order.order_id, now(), f"backordered: {reason}")
        ORDERS_UNROUTABLE.labels("orders", "backordered").inc()
        return OrderStatus(order.status)
    await reject_order(uow, order, reason)
    ORDERS_UNROUTABLE.labels("orders", "rejected").inc()
    return OrderStatus.REJECTED
