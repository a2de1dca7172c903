"""Routing an order's lines to locations, recording why, and settling the order's status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal

from services.contracts.orders import FulfillmentMethod
from services.infrastructure.errors import ServiceUnavailable
from services.infrastructure.metrics import ORDERS_UNROUTABLE, ROUTING_DECISIONS, STOCK_CHECKS
from services.orders import routing
from services.orders.domain import Order
from services.orders.handlers.common import Policy, StockAuthority, now, today
from services.orders.repository import OrdersUnitOfWork

# What made orders route: a new order, a fulfillment that failed (rejected by inventory or the
# location), or a customer's change of pickup store.
RoutingCause = Literal["placed", "reroute", "store_change"]


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
        partner_id=row.get("partner_id"),
    )


async def route(
    uow: OrdersUnitOfWork,
    order: Order,
    lines: dict[str, int],
    trigger: str,
    policy: Policy,
    *,
    cause: RoutingCause = "placed",
    store_id: str | None = None,
    replacing: Sequence[str] = (),
) -> bool:
    """Plan fulfillments for `lines`, record the decision, and reserve; False if nothing can.
    `store_id` collects somewhere else than the order's store; the new fulfillments replace
    those `replacing` once they hold (a change of pickup store)."""
    excluded = order.failed_locations()
    address = order.address or {}
    ship_with: list[routing.ShipWith] = []
    if order.method is FulfillmentMethod.DELIVERY and policy.consolidation_window:
        since = now() - policy.consolidation_window
        ship_with = await uow.orders.parcels_to_join(order, since)
    request = routing.RoutingRequest(
        method=order.method.value,
        lines=lines,
        destination=routing.Point(address["lat"], address["lon"]) if address else None,
        store_id=store_id or order.store_id,
        excluded=excluded,
        ship_with=tuple(ship_with),
    )
    day = today()
    skus = list(lines)
    sites = [site(r) for r in await uow.network.sites(skus, day)]
    result = routing.route_order(request, sites, policy.rules)
    checked = policy.stock is not None and _short(result)
    if policy.stock is not None and checked:
        await _refresh_from_inventory(uow, policy.stock, skus)
        sites = [site(r) for r in await uow.network.sites(skus, day)]
        result = routing.route_order(request, sites, policy.rules)
        STOCK_CHECKS.labels("orders", "short" if _short(result) else "behind").inc()
        result = replace(
            result, rules_applied=(*result.rules_applied, "stock checked with inventory")
        )
    backorder = None
    if (
        not result.fulfillments
        and order.allow_backorder
        and not replacing
        and policy.stock is not None
    ):
        supplies = await _supplies(policy.stock, skus)
        # Stock on its way may be bound for a location whose event has not reached the
        # projection yet (created a moment ago): learn it from inventory, as for levels.
        if await _learn_locations(uow, policy.stock, {s.location_id for s in supplies}):
            sites = [site(r) for r in await uow.network.sites(skus, day)]
        backorder = routing.plan_backorder(request, sites, supplies)
        if backorder is not None:
            result = replace(
                result,
                fulfillments=(backorder.fulfillment,),
                rejected_reason=None,
                rules_applied=(*result.rules_applied, "backorder against incoming stock"),
                explanation=backorder.explanation,
            )
    attempt = order.start_routing()
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
    order.record_decision(
        {
            **decision(attempt, trigger, lines, excluded, result),
            "stock_checked_with_inventory": checked,
        }
    )
    if backorder is not None and result.fulfillments:
        order.promise(attempt, backorder)
        return True
    for f in order.assign(attempt, result.fulfillments, replacing):
        if order.method is FulfillmentMethod.DELIVERY or f.transfer:
            await uow.network.add_load(f.location_id, day, 1)
    return bool(result.fulfillments)


async def _supplies(stock: StockAuthority, skus: list[str]) -> list[routing.Supply]:
    """What is on its way for `skus`, as inventory has it now (it holds the promises)."""
    return [
        routing.Supply(s.supply_id, s.location_id, s.sku, s.promisable, s.expected_at)
        for s in await stock.incoming(skus)
    ]


def _short(result: routing.RoutingResult) -> bool:
    """The projection could not place the order as asked: nowhere at all, or a collection only
    by moving stock to the store. Either may be the projection being behind inventory."""
    return not result.fulfillments or any(p.transfer for p in result.fulfillments)


async def _refresh_from_inventory(
    uow: OrdersUnitOfWork, stock: StockAuthority, skus: list[str]
) -> None:
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
    await uow.network.update_levels(levels)
    await _learn_locations(uow, stock, {level.location_id for level in levels})


async def _learn_locations(
    uow: OrdersUnitOfWork, stock: StockAuthority, location_ids: set[str]
) -> bool:
    """Ask inventory for the locations among `location_ids` the projection has not seen yet;
    True if it learned any."""
    learned = False
    for location_id in sorted(location_ids - await uow.network.known_locations(location_ids)):
        location = await stock.location(location_id)
        if location is not None:
            await uow.network.learn_location(location)
            learned = True
    return learned


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


async def reroute(
    uow: OrdersUnitOfWork, order: Order, lines: dict[str, int], trigger: str, policy: Policy
) -> None:
    """Plan lines that failed again, without the locations that failed them."""
    if order.ended:
        return
    if await route(uow, order, lines, trigger, policy, cause="reroute"):
        order.settle()
    else:
        unplanned(order, order.decisions[-1]["rejected_reason"] or "no location left")


def unplanned(order: Order, reason: str) -> None:
    """Nothing can serve (part of) the order, now or from incoming stock: reject it and release
    what it holds."""
    order.reject(reason)
    ORDERS_UNROUTABLE.labels("orders", "rejected").inc()
