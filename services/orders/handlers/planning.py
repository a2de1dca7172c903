"""Routing an order's lines to locations, recording why, and settling the order's status."""

from __future__ import annotations

from typing import Any, Literal

from services.contracts.inventory import (
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
from services.infrastructure.metrics import ORDERS_UNROUTABLE, ROUTING_DECISIONS
from services.orders import db, domain, routing
from services.orders.handlers.common import (
    F,
    Policy,
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
    result = routing.route_order(
        request, [site(r) for r in await db.sites(conn, list(lines), day)], policy.rules
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
        conn, order.order_id, attempt, decision(attempt, trigger, lines, excluded, result)
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
